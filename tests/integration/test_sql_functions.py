"""Main runs exactly the server-side SQL in db/sql: the migrated database defines each function
as its file does, and every revision on the way down to nothing and up again leaves the frozen
copies that revision names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from pathlib import Path

import asyncpg
from alembic import command
from alembic.script import ScriptDirectory

from ccat_api.db import migrate
from ccat_api.db.migrations.frozen_sql import CURRENT_SQL_DIR, newest_frozen_copies
from ccat_api.devstack.postgres import APP_USER
from ccat_api.devstack.stack import Stack
from tests.support import fetch

# Functions an extension installs are the extension's, not ours.
FUNCTIONS_IN_SCHEMA = """
SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc AS p
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = $1
   AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY p.proname
"""
SCRATCH_SCHEMA = "ccat_sql_files"


def by_name(rows: Iterable[asyncpg.Record]) -> dict[str, str]:
    definitions: dict[str, str] = {}
    for name, definition in rows:
        assert name not in definitions, f"{name} is overloaded; one file cannot say which"
        definitions[name] = definition
    return definitions


async def definitions_in_database(dsn: str) -> dict[str, str]:
    return by_name(await fetch(dsn, FUNCTIONS_IN_SCHEMA, "public"))


async def definitions_of_files(dsn: str, files: Iterable[Path]) -> dict[str, str]:
    """What PostgreSQL makes of the files, in a scratch schema that is rolled back: comparing
    its own rendering on both sides leaves layout and quoting to PostgreSQL."""
    conn = await asyncpg.connect(dsn, timeout=10)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"CREATE SCHEMA {SCRATCH_SCHEMA}")
        await conn.execute(f"SET LOCAL search_path = {SCRATCH_SCHEMA}")
        # Bodies name tables that a revision being checked may not have yet.
        await conn.execute("SET LOCAL check_function_bodies = off")
        for path in files:
            await conn.execute(path.read_text(encoding="utf-8"))
        rows = await conn.fetch(FUNCTIONS_IN_SCHEMA, SCRATCH_SCHEMA)
    finally:
        await transaction.rollback()
        await conn.close()
    return {
        name: definition.replace(f"{SCRATCH_SCHEMA}.", "public.", 1)
        for name, definition in by_name(rows).items()
    }


async def test_every_function_on_main_is_defined_as_its_file_in_db_sql(stack: Stack) -> None:
    dsn = stack.main_db.dsn()
    expected = await definitions_of_files(dsn, sorted(CURRENT_SQL_DIR.glob("*.sql")))
    assert expected
    assert await definitions_in_database(dsn) == expected


async def test_each_revision_down_to_base_and_up_again_has_its_frozen_copies(
    stack: Stack,
) -> None:
    database = f"ccat_migrations_{uuid.uuid4().hex[:12]}"
    stack.main_db.psql(f"CREATE DATABASE {database} OWNER {APP_USER}", database="postgres")
    url = stack.main_db.url(database=database)
    dsn = stack.main_db.dsn(database=database)
    config = migrate.alembic_config(url)
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    try:
        # Alembic runs its own event loop (env.py), so it gets a thread of its own.
        await asyncio.to_thread(migrate.upgrade, url)
        for revision in [*revisions[1:], "base"]:
            await asyncio.to_thread(command.downgrade, config, revision)
            frozen = {} if revision == "base" else newest_frozen_copies(revision)
            expected = await definitions_of_files(dsn, frozen.values())
            assert await definitions_in_database(dsn) == expected, f"at revision {revision}"
        await asyncio.to_thread(migrate.upgrade, url)
        expected = await definitions_of_files(dsn, sorted(CURRENT_SQL_DIR.glob("*.sql")))
        assert await definitions_in_database(dsn) == expected
    finally:
        stack.main_db.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", database="postgres")
