"""The Lua scripts spell no key name: keys.py passes them every key and key prefix."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from ccat_api.buffering.keys import SiteKeys

SCRIPTS = sorted(
    (entry.name, entry.read_text())
    for entry in resources.files("ccat_api.buffering").joinpath("lua").iterdir()
    if entry.name.endswith(".lua")
)

# ':' in these literals belongs to the format of a stored value, not to a key name.
VALUE_FORMATS = {
    "^([^:]+):(.+)$",  # a touched record, "model:pk" (RecordRef.key)
    "i:",  # an overlay record's filed index entry, "i:column=value"
    " i:",
    "u:",  # an overlay record's filed unique claim, "u:column=digest"
    " u:",
    "o:",  # an overlay record's filed sorted set, "o:~by=column"
}

# A long bracket, [[...]] or [==[...]==]: a long string, or after '--' a long comment.
_LONG = re.compile(r"\[(=*)\[(.*?)\]\1\]", re.DOTALL)


def string_literals(source: str) -> list[tuple[int, str]]:
    """Every string literal of a Lua source with its line, comments left out."""
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(source):
        if source.startswith("--", i):
            long = _LONG.match(source, i + 2)
            end = long.end() if long else source.find("\n", i)
            i = len(source) if end < 0 else end
        elif source[i] in "'\"":
            quote, j, chars = source[i], i + 1, []
            while source[j] != quote:
                step = 2 if source[j] == "\\" else 1
                chars.append(source[j : j + step])
                j += step
            found.append((source.count("\n", 0, i) + 1, "".join(chars)))
            i = j + 1
        elif (long := _LONG.match(source, i)) is not None:
            found.append((source.count("\n", 0, i) + 1, long.group(2)))
            i = long.end()
        else:
            i += 1
    return found


def key_fragments(source: str) -> list[str]:
    """Literals that look like a piece of a key name: a ':' separator or the namespace."""
    namespace = SiteKeys("site").prefix.split(":")[0]
    return [
        f"line {line}: {literal!r}"
        for line, literal in string_literals(source)
        if (":" in literal and literal not in VALUE_FORMATS) or namespace in literal
    ]


def test_check_finds_a_key_built_by_hand_and_skips_comments() -> None:
    source = (
        "-- a comment may say prefix .. ':tx:' .. id\n"
        "--[[ and so may ':ov:' in a long one ]]\n"
        "local k = prefix .. ':tx:' .. id\n"
        'local s = "ccat" .. sep .. [[:seq]]\n'
        "local f = ' i:' .. entry -- a value format\n"
    )
    assert key_fragments(source) == ["line 3: ':tx:'", "line 4: 'ccat'", "line 4: ':seq'"]


@pytest.mark.parametrize(("name", "source"), SCRIPTS, ids=[name for name, _ in SCRIPTS])
def test_script_takes_every_key_name_from_keys_py(name: str, source: str) -> None:
    fragments = key_fragments(source)
    assert not fragments, f"{name} builds key names itself: " + ", ".join(fragments)


def test_every_script_is_checked() -> None:
    assert {name for name, _ in SCRIPTS} >= {
        "accept.lua",
        "discard.lua",
        "finish.lua",
        "overlay.lua",
        "page.lua",
        "retry.lua",
        "visible.lua",
    }
