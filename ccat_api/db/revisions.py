"""The schema revision a database is at, against the one this code was written for, and what
a gateway or processor does about a difference (checked once at start-up).

The main site writes straight into main: it refuses to start on a database older than its
code, or one that no longer applies the envelopes it builds. A secondary site starts anyway
and says so: its writes are buffered, and the processor holds the replay (visibly) until main
is migrated or the site upgraded, so nothing is lost or dead-lettered meanwhile. A database
newer than the code is served through the envelope contract while main still applies this
code's envelope version: that is the expand step of a migration, the normal order of an
upgrade (main first, sites after).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from alembic.script import ScriptDirectory

from ccat_api.db.migrate import alembic_config, current_head


class Relation(StrEnum):
    SAME = "same"
    # The database lacks migrations this code needs.
    BEHIND = "behind"
    # The database has migrations this code does not know (main migrated first).
    AHEAD = "ahead"


@dataclass(frozen=True)
class RevisionCheck:
    database_revision: str | None
    code_revision: str
    relation: Relation
    # The envelope version this code builds.
    envelope_version: int
    # Whether main's contract still applies the envelope version this code builds; None
    # where the database does not say (a revision before the contract).
    applies_code_envelopes: bool | None

    @property
    def servable(self) -> bool:
        """Whether writes from this code can land in this database as it is."""
        if self.relation is Relation.BEHIND:
            return False
        return self.applies_code_envelopes is not False

    def describe(self) -> str:
        db = self.database_revision or "none (never migrated)"
        if self.relation is Relation.SAME:
            return f"database and code at revision {self.code_revision}"
        if self.relation is Relation.BEHIND:
            return (
                f"the database is at revision {db} and this code needs {self.code_revision}:"
                " migrate main (ccat-api migrate)"
            )
        if self.applies_code_envelopes is False:
            return (
                f"the database is at revision {db}, newer than this code's"
                f" {self.code_revision}, and no longer applies envelope version"
                f" {self.envelope_version}, which this code builds: upgrade this site"
            )
        return (
            f"the database is at revision {db}, newer than this code's {self.code_revision};"
            " served through the envelope contract (it still applies version"
            f" {self.envelope_version})"
        )


def relation(database_revision: str | None, code: str) -> Relation:
    if database_revision == code:
        return Relation.SAME
    script = ScriptDirectory.from_config(alembic_config(""))
    known = {rev.revision for rev in script.walk_revisions()}
    if database_revision is None or database_revision in known:
        return Relation.BEHIND
    return Relation.AHEAD


# One query each, no parameters, so that both a SQLAlchemy connection (the gateway) and a bare
# asyncpg one (the processor's, across the WAN) can ask them.
FetchValue = Callable[[str], Awaitable[object]]


async def check_revision(fetch_value: FetchValue, envelope_version: int) -> RevisionCheck:
    """Read the database's revision and contract and compare them with this code's."""
    database: str | None = None
    if await fetch_value("SELECT to_regclass('alembic_version') IS NOT NULL"):
        found = await fetch_value("SELECT version_num FROM alembic_version")
        database = str(found) if found is not None else None
    applied: Sequence[int] | None = None
    if await fetch_value("SELECT to_regclass('envelope_versions') IS NOT NULL"):
        applied = applied_versions(await fetch_value(APPLIED_VERSIONS_SQL))
    return compare_revision(database, applied, envelope_version)


# The envelope versions main applies, as text ("1,2"): an integer array would cost a client
# like asyncpg a type lookup of several round trips on each new connection.
APPLIED_VERSIONS_SQL = (
    "SELECT string_agg(version::text, ',') FROM envelope_versions WHERE retired_at IS NULL"
)


def applied_versions(found: object) -> list[int]:
    """``APPLIED_VERSIONS_SQL``'s answer as numbers (none: NULL)."""
    return [int(v) for v in str(found).split(",")] if found else []


def compare_revision(
    database: str | None, applied: Sequence[int] | None, envelope_version: int
) -> RevisionCheck:
    """The check from what the database said: its revision and the envelope versions it
    applies (None: it has no contract table, a revision before 0008)."""
    applies = None if applied is None else envelope_version in applied
    code = current_head()
    return RevisionCheck(database, code, relation(database, code), envelope_version, applies)
