"""Idempotency answers main has recorded (``idempotency_records``), read where they are near:
main itself at the main site, the local replica at a secondary site. A secondary site keeps
its own answers in Redis for ``idempotency_ttl_s``; main records them when it applies the
transaction (ccat_apply_batch), so a client retrying after the site forgot the key still gets
the first answer, or a refusal once main keeps only a tombstone, never a second write."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from ccat_api.buffering.idempotency import Answer, IdempotencyClaim, replay
from ccat_api.db.engines import PrimaryDatabase, ReadDatabase

log = logging.getLogger(__name__)

_PRIOR_ANSWER = sa.text(
    "SELECT request_hash, status_code, response FROM idempotency_records "
    "WHERE principal = :principal AND key = :key"
)


class RecordedAnswers:
    def __init__(self, database: PrimaryDatabase | ReadDatabase, *, required: bool) -> None:
        self._database = database
        # Main's own records must be read (the direct apply has nothing else). A replica
        # that cannot answer only loses the early answer: main refuses the repeated key
        # when it replays, so the write still cannot apply twice, and a critical write at a
        # site does not wait for its replica.
        self._required = required

    async def prior_answer(self, claim: IdempotencyClaim) -> Answer | None:
        try:
            async with self._database.connect() as conn:
                prior = (
                    await conn.execute(
                        _PRIOR_ANSWER, {"principal": claim.principal, "key": claim.key}
                    )
                ).one_or_none()
        except (SQLAlchemyError, OSError) as exc:
            if self._required:
                raise
            log.warning("cannot look up Idempotency-Key %r on the replica: %s", claim.key, exc)
            return None
        if prior is None:
            return None
        return replay(
            claim,
            {"hash": prior.request_hash, "status": prior.status_code, "body": prior.response},
        )
