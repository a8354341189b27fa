"""Test-only Alembic revisions on top of the real head: an expand step and its contract step,
the kind of schema change main gets while sites hold backlogs (tests/integration/
test_schema_changes.py applies them with ``alembic_config_with_tests``)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config

from ccat_api.db.migrate import MIGRATIONS_DIR, alembic_config

TEST_VERSIONS_DIR = Path(__file__).resolve().parent


def alembic_config_with_tests(database_url: str) -> Config:
    config = alembic_config(database_url)
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations",
        os.pathsep.join([str(MIGRATIONS_DIR / "versions"), str(TEST_VERSIONS_DIR)]),
    )
    return config
