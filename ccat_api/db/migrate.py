"""Bring the main database to the newest schema (Alembic, configured in code, no ini file)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(
    database_url: str, revision: str = "head", *, contract_max_report_age_s: float | None = None
) -> None:
    """Blocking; runs its own event loop, so call it from a thread when inside one.

    ``contract_max_report_age_s``: how recent a site's backlog report must be for a contract
    step to trust it (``db.contract``)."""
    config = alembic_config(database_url)
    if contract_max_report_age_s is not None:
        config.attributes["contract_max_report_age_s"] = contract_max_report_age_s
    command.upgrade(config, revision)


@functools.cache
def current_head() -> str:
    """This code's newest revision (read from the migration files once: it cannot change
    while the process runs, and reading them costs a noticeable moment)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head
