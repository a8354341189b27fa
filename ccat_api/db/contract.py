"""The envelope contract as migrations use it: register a new envelope version (expand) and
retire old ones (contract) only once no site can still hold them.

Sites report their backlog to main (``ccat_report_backlog``, written by each processor); a
contract step reads those reports inside the migration's transaction and refuses, naming the
site and how many transactions it holds, while any site may still replay an envelope of a
version being retired. A site whose report is too old to tell is a refusal too: during a WAN
outage it may have buffered a day of old envelopes that main has not heard of.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

# How recent a site's report must be for a contract step to trust it, unless the migrating
# command says otherwise (``ccat-api migrate --max-report-age-s``, stored in the Alembic
# config's attributes under this name).
MAX_REPORT_AGE_S = 600.0
MAX_REPORT_AGE_ATTRIBUTE = "contract_max_report_age_s"


class ContractRefused(RuntimeError):
    """A contract step that would strand envelopes a site still holds."""


@dataclass(frozen=True)
class Holdout:
    site: str
    code_version: int
    oldest_pending_version: int | None
    pending: int
    report_age_s: float

    def describe(self, version: int, max_age_s: float) -> str:
        if self.report_age_s > max_age_s:
            return (
                f"site {self.site!r} last reported {self.report_age_s:.0f} s ago (more than"
                f" {max_age_s:.0f} s), then holding {self.pending} transactions; it may hold"
                f" envelopes older than version {version} now"
            )
        return (
            f"site {self.site!r} holds {self.pending} pending transactions, the oldest of"
            f" envelope version {self.oldest_pending_version}"
        )


def register_envelope_version(version: int, note: str) -> None:
    """Expand: main applies envelopes of ``version`` from now on (older ones still too)."""
    op.get_bind().execute(
        sa.text(
            "INSERT INTO envelope_versions (version, note) VALUES (:v, :note) "
            "ON CONFLICT (version) DO UPDATE SET retired_at = NULL, note = EXCLUDED.note"
        ),
        {"v": version, "note": note},
    )


def unregister_envelope_version(version: int) -> None:
    """The downgrade of ``register_envelope_version``."""
    op.get_bind().execute(
        sa.text("DELETE FROM envelope_versions WHERE version = :v"), {"v": version}
    )


def holdouts(version: int, max_age_s: float) -> list[Holdout]:
    """Sites that hold, or may hold, pending envelopes older than ``version``."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT site, code_version, oldest_pending_version, pending,"
            " extract(epoch FROM now() - reported_at) FROM site_backlogs"
            " WHERE oldest_pending_version < :v"
            "    OR (extract(epoch FROM now() - reported_at) > :age AND code_version < :v)"
            " ORDER BY site"
        ),
        {"v": version, "age": max_age_s},
    )
    return [Holdout(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def retire_envelope_versions_below(version: int) -> None:
    """Contract: main stops applying envelopes older than ``version``. Refused, with every
    site named, while a site still holds (or may hold) one; the caller's migration then rolls
    back whole, so run it again once the sites have drained."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    max_age_s = float(attributes.get(MAX_REPORT_AGE_ATTRIBUTE, MAX_REPORT_AGE_S))
    conn = op.get_bind()
    # Reports written while we decide must wait for us, and we for them.
    conn.execute(sa.text("LOCK TABLE site_backlogs IN SHARE MODE"))
    waiting = holdouts(version, max_age_s)
    if waiting:
        reasons = "; ".join(h.describe(version, max_age_s) for h in waiting)
        raise ContractRefused(
            f"cannot retire envelope versions below {version}: {reasons}."
            " Let the sites drain (ccat-api status at each site) and run the migration again."
        )
    conn.execute(
        sa.text(
            "UPDATE envelope_versions SET retired_at = now()"
            " WHERE version < :v AND retired_at IS NULL"
        ),
        {"v": version},
    )


def restore_envelope_versions_below(version: int) -> None:
    """The downgrade of ``retire_envelope_versions_below``."""
    op.get_bind().execute(
        sa.text("UPDATE envelope_versions SET retired_at = NULL WHERE version < :v"),
        {"v": version},
    )
