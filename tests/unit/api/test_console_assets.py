"""The console's files: each one the gateway serves ships in the wheel (package data), the
vendored charting library comes with its licence, and the page names no absolute path, so it
works under whatever prefix a proxy serves the gateway at."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

from ccat_api.api.console import ASSETS

REPO_ROOT = Path(__file__).resolve().parents[3]
CONSOLE = resources.files("ccat_api.console")


def _package_data() -> list[str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        patterns: list[str] = tomllib.load(file)["tool"]["setuptools"]["package-data"]["ccat_api"]
    return patterns


def test_every_served_asset_exists_and_ships_in_the_wheel() -> None:
    patterns = _package_data()
    missing = [name for name in ASSETS if not CONSOLE.joinpath(name).is_file()]
    unshipped = [
        name
        for name in ASSETS
        if not any(fnmatch.fnmatch(f"console/{name}", pattern) for pattern in patterns)
    ]
    assert (missing, unshipped) == ([], [])


def test_every_file_in_the_console_folder_is_served() -> None:
    files = {
        entry.name
        for entry in CONSOLE.iterdir()
        if entry.is_file() and not entry.name.endswith(".py")
    }
    assert files == set(ASSETS)


def test_the_vendored_charting_library_carries_its_licence() -> None:
    licence = CONSOLE.joinpath("uPlot.LICENSE").read_text()
    assert "MIT License" in licence
    assert "Leon Sorokin" in licence
    assert (
        CONSOLE.joinpath("uPlot.iife.min.js")
        .read_text()
        .startswith("/*! https://github.com/leeoniya/uPlot")
    )


def test_the_page_names_no_absolute_path() -> None:
    page = CONSOLE.joinpath("index.html").read_text()
    script = CONSOLE.joinpath("console.js").read_text()
    assert re.findall(r'(?:href|src|action)="/', page) == []
    # A string or template literal that starts with "/" and a letter is a path from the root.
    assert re.findall(r"""["'`]/[A-Za-z]""", script) == []
