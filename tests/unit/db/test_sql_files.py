"""db/sql is the newest frozen copy of each server-side function, and every frozen copy is
applied by the revision it is named after."""

from __future__ import annotations

import re

from ccat_api.db.migrate import MIGRATIONS_DIR
from ccat_api.db.migrations.frozen_sql import (
    CURRENT_SQL_DIR,
    FROZEN_SQL_DIR,
    newest_frozen_copies,
)

FROZEN_NAME = re.compile(r"\d{4}_ccat_\w+\.sql")


def test_frozen_copies_are_named_revision_then_function() -> None:
    names = sorted(path.name for path in FROZEN_SQL_DIR.glob("*.sql"))
    assert names
    assert [name for name in names if not FROZEN_NAME.fullmatch(name)] == []


def test_each_current_sql_file_is_the_newest_frozen_copy() -> None:
    newest = newest_frozen_copies()
    current = sorted(CURRENT_SQL_DIR.glob("*.sql"))
    assert current
    for path in current:
        assert path.stem in newest, f"no migration applies {path.name}: freeze a copy"
        frozen = newest[path.stem]
        assert path.read_text(encoding="utf-8") == frozen.read_text(encoding="utf-8"), (
            f"{path.name} differs from {frozen.name}: ship the change in a new migration"
        )


def test_every_frozen_function_has_a_current_file() -> None:
    current = {path.stem for path in CURRENT_SQL_DIR.glob("*.sql")}
    assert sorted(set(newest_frozen_copies()) - current) == []


def test_every_frozen_copy_is_applied_by_its_revision() -> None:
    for path in sorted(FROZEN_SQL_DIR.glob("*.sql")):
        revision = path.name[:4]
        migrations = list((MIGRATIONS_DIR / "versions").glob(f"{revision}_*.py"))
        assert len(migrations) == 1, f"{path.name} names no single revision"
        [migration] = migrations
        assert f'frozen_sql("{path.stem}")' in migration.read_text(encoding="utf-8"), (
            f"{migration.name} does not apply {path.name}"
        )
