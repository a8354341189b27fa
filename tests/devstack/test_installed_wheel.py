"""The wheel an operator installs (deploy/README.md) is enough to run the service outside a
checkout: every file of the package that is not Python source (the settings file, the SQL
functions and the migrations' frozen copies, the Lua scripts, the console's assets) is in
it, and the installed ``ccat-api``, run from a directory that is no checkout, brings a fresh
database to the newest schema, layers the shipped settings file and prints the settings.

The wheel is built from a copy of the tracked sources (the shared checkout is never built
in place) and installed with ``--target``; its dependencies come from this venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccat_api.db.migrate import current_head
from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.system import find_pg_bin_dir, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]


@dataclass
class Installed:
    wheel: Path
    site: Path
    # A directory that is no checkout, to run the installed package from.
    elsewhere: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The installed console script, with only the wheel and this venv's packages."""
        clean = {key: value for key, value in os.environ.items() if not key.startswith("CCAT_")}
        clean["PYTHONPATH"] = str(self.site)
        return subprocess.run(
            [str(self.site / "bin" / "ccat-api"), *args],
            env={**clean, **(env or {})},
            cwd=self.elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def tracked(folder: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", folder],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [name for name in listed.stdout.split("\0") if name and (REPO_ROOT / name).is_file()]


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the package's files")
    base = Path(tempfile.mkdtemp(prefix="ccat-wheel-"))
    try:
        source = base / "source"
        for name in ["pyproject.toml", "README.md", *tracked("ccat_api")]:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO_ROOT / name, source / name)
        built = subprocess.run(
            [*PIP, "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(source)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
        (wheel,) = (base / "dist").glob("ccat_api-*.whl")
        site = base / "site"
        install = subprocess.run(
            [*PIP, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert install.returncode == 0, install.stdout + install.stderr
        elsewhere = base / "elsewhere"
        elsewhere.mkdir()
        yield Installed(wheel, site, elsewhere)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_wheel_holds_every_file_of_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = set(wheel.namelist())
    missing = [name for name in tracked("ccat_api") if name not in shipped]
    assert not missing, f"not in the wheel (pyproject.toml package-data): {missing}"
    assert "ccat_api/settings.toml" in shipped


def test_the_installed_package_is_the_one_that_runs(installed: Installed) -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import ccat_api; print(ccat_api.__file__)"],
        env={**os.environ, "PYTHONPATH": str(installed.site)},
        cwd=installed.elsewhere, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == str(installed.site / "ccat_api" / "__init__.py")


def test_config_example_runs_outside_a_checkout(installed: Installed) -> None:
    printed = installed.run("config", "example")
    assert printed.returncode == 0, printed.stderr
    assert (REPO_ROOT / ".env.example").read_text() == printed.stdout


def test_the_shipped_settings_file_is_layered_outside_a_checkout(installed: Installed) -> None:
    """CCAT_ENV=secondary names a section of the packaged settings.toml."""
    loaded = subprocess.run(
        [sys.executable, "-c",
         "from ccat_api.config import load_settings; s = load_settings();"
         " print(s.site_type, s.run_processor)"],
        env={**os.environ, "PYTHONPATH": str(installed.site), "CCAT_ENV": "secondary",
             "CCAT_SESSION_SECRET": "s" * 32},
        cwd=installed.elsewhere, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["secondary", "True"]


def test_migrate_brings_a_fresh_database_to_the_newest_schema(installed: Installed) -> None:
    if find_pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not installed (make system-deps)")
    base = Path(tempfile.mkdtemp(prefix="ccat-wheel-db-"))
    # The postgres user must reach its directories below ours.
    os.chmod(base, 0o755)  # noqa: S103
    cluster = PostgresCluster("wheel-db", base / "db" / "data", free_port())
    try:
        cluster.init_primary()
        cluster.start()
        cluster.create_app_database()
        migrated = installed.run(
            "migrate",
            env={"CCAT_MAIN_DB_URL": cluster.url(), "CCAT_SESSION_SECRET": "s" * 32},
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert cluster.psql("SELECT version_num FROM alembic_version") == current_head()
        # The server-side functions, one per file in db/sql, come from the migrations' copies.
        expected = sorted(Path(name).stem for name in tracked("ccat_api/db/sql"))
        assert expected
        functions = cluster.psql(
            "SELECT string_agg(DISTINCT proname, ' ' ORDER BY proname) FROM pg_proc"
            " WHERE proname LIKE 'ccat\\_%'"
        )
        assert [name for name in expected if name not in functions.split()] == []
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
