"""idempotency keys at replay: main records a buffered write's key and first answer

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A secondary site keeps an Idempotency-Key's answer in its Redis for ``idempotency_ttl_s``.
``ccat_apply_batch`` now records the key and the answer of a transaction that carries them
(``idem`` in the batch) in idempotency_records as it applies it, and refuses one whose key is
already there, so a retry after the site forgot the key is answered from the replica, or
refused at replay, and never applied twice. Batches without ``idem`` apply as before.
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0011_ccat_apply_batch"))


def downgrade() -> None:
    op.execute(frozen_sql("0009_ccat_apply_batch"))
