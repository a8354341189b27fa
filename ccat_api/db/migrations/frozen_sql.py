"""Server-side SQL as migrations apply it: frozen, named copies, one per function and revision.

``migrations/sql/<revision>_<function>.sql`` is the function as revision <revision> defines it
and is never edited afterwards; ``db/sql/<function>.sql`` is the current source, equal to the
newest frozen copy. tests/unit/db/test_sql_files.py holds the two together and
tests/integration/test_sql_functions.py holds the database to ``db/sql``.
"""

from __future__ import annotations

from pathlib import Path

FROZEN_SQL_DIR = Path(__file__).resolve().parent / "sql"
CURRENT_SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def frozen_sql(name: str) -> str:
    """The text of ``migrations/sql/<name>.sql``, e.g. ``frozen_sql("0005_ccat_apply_batch")``.

    One statement per file: op.execute sends it through asyncpg as a prepared statement, which
    holds a single command.
    """
    return (FROZEN_SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def newest_frozen_copies(revision: str | None = None) -> dict[str, Path]:
    """Per function, the frozen copy in force at ``revision`` (at head when None).

    Revision ids are zero-padded, so file names sort in revision order as text.
    """
    newest: dict[str, Path] = {}
    for path in sorted(FROZEN_SQL_DIR.glob("*.sql")):
        copy_revision, _, function = path.stem.partition("_")
        if revision is None or copy_revision <= revision:
            newest[function] = path
    return newest
