"""The walk of one write in docs/architecture.md is the code's: each step's module imports the
next (where the hop says ``imports``), and no step's module imports, even indirectly, one that
comes before it in the walk. A module moved or an import turned around fails here."""

from __future__ import annotations

import ast
import functools
import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WALK = re.compile(r"<!-- walk -->(.*?)<!-- /walk -->", re.S)
STEP = re.compile(r"^\d+\. `(ccat_api/[\w/]+\.py)`", re.M)
HOP = re.compile(r"^\s+↓ (.*)$", re.M)


def _walk() -> tuple[list[str], list[bool]]:
    """The steps' modules, and for each hop whether it claims an import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    found = WALK.search(text)
    assert found, "docs/architecture.md has no <!-- walk --> section"
    body = found.group(1)
    modules = STEP.findall(body)
    hops: list[bool] = []
    for before, after in itertools.pairwise(modules):
        between = body[body.index(f"`{before}`") : body.index(f"`{after}`")]
        kinds = HOP.findall(between)
        assert kinds, f"no hop between {before} and {after}"
        hops.append(kinds[0].startswith("imports"))
    return modules, hops


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


@functools.cache
def _imports(module: str) -> frozenset[str]:
    """The ccat_api modules this one imports directly (``from a import b`` counts ``a.b`` when
    ``b`` is a module)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ccat_api"):
            found.add(node.module)
            for alias in node.names:
                if (ROOT / (f"{node.module}.{alias.name}".replace(".", "/") + ".py")).exists():
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ccat_api")}
    return frozenset(found)


def _reaches(start: str, target: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == target:
            return True
        if module not in seen:
            seen.add(module)
            todo += _imports(module)
    return False


def test_the_walk_names_existing_modules_from_the_route_to_the_read() -> None:
    modules, _ = _walk()
    assert len(modules) >= 10
    assert modules[0] == "ccat_api/api/executed_obs_units.py"
    assert [m for m in modules if not (ROOT / m).exists()] == []


def test_each_step_imports_the_next_where_the_walk_says_so() -> None:
    modules, hops = _walk()
    missing = [
        f"{a} does not import {b}"
        for (a, b), imports in zip(itertools.pairwise(modules), hops, strict=True)
        if imports and _module_name(b) not in _imports(_module_name(a))
    ]
    assert missing == []


def test_no_step_imports_one_before_it() -> None:
    modules, _ = _walk()
    names = [_module_name(m) for m in modules]
    back = [
        f"{later} imports {earlier}"
        for i, earlier in enumerate(names)
        for later in names[i + 1 :]
        if _reaches(later, earlier)
    ]
    assert back == []
