from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from ccat_api.cli import app


def test_version_is_the_installed_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"ccat-api {version('ccat-api')}\n")
