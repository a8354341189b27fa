"""The docs' generated references (docs/_ext/ccat_reference.py) hold every setting, every
operation of both sites' apps with the requirement its route declares, every command, and
every alert with its runbook. `make docs` fails on a broken link, not on an entry the
generator left out."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import typer.main

from ccat_api.cli import app as cli_app
from ccat_api.config import env_entries

EXTENSION = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "ccat_reference.py"


@functools.cache
def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ccat_reference", EXTENSION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_has_a_section_per_name_env_may_set() -> None:
    page: str = _extension().settings_markdown()
    missing = [name for name, _, _ in env_entries() if f"\n### {name}\n" not in page]
    assert missing == []


def test_the_api_reference_has_every_operation_of_both_sites_and_who_may_call_it() -> None:
    extension = _extension()
    page: str = extension.api_markdown()
    operations = {
        f"### {method.upper()} `{path}`"
        for app in extension.site_apps().values()
        for path, item in app.openapi()["paths"].items()
        for method in item
    }
    assert len(operations) > 50
    assert sorted(heading for heading in operations if heading not in page) == []
    assert "auth: not declared" not in page
    assert "auth: public (no token)" in page
    assert "auth: bearer token with `write:observations`" in page


def test_the_cli_reference_has_every_command() -> None:
    page: str = _extension().cli_markdown()
    paths: list[str] = []

    def walk(command: Any, path: str) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(cli_app), "ccat-api")
    assert len(paths) > 20
    assert [path for path in paths[1:] if f"# {path}\n" not in page] == []
    assert "`--critical-dead-letters <int>`" in page


def test_prose_from_the_code_reads_as_written_and_keeps_its_code_spans() -> None:
    text = _extension().text
    assert text("a <site> *not* `a_b` [x]") == r"a \<site\> \*not\* `a_b` \[x\]"


def test_the_alerts_page_has_every_alert_with_its_runbook() -> None:
    extension = _extension()
    page: str = extension.alerts_markdown()
    rules = extension.ALERTS_FILE.read_text()
    names = re.findall(r"^\s+- alert: (\w+)$", rules, re.M)
    assert len(names) > 10
    assert [name for name in names if f"\n## {name}\n" not in page] == []
    assert page.count("- what to do: [") == len(names)
