from __future__ import annotations

import uuid
from typing import Any

from ccat_api.buffering.query import AtLeast, Below, Eq, OrderBy, sort_key

IDS = [uuid.UUID(int=i) for i in range(10)]


def test_sort_puts_nulls_last_in_both_directions_and_breaks_ties_by_id() -> None:
    rows: list[dict[str, Any]] = [
        {"id": IDS[3], "t": 2},
        {"id": IDS[1], "t": None},
        {"id": IDS[2], "t": 2},
        {"id": IDS[0], "t": 1},
        {"id": IDS[4], "t": None},
    ]
    asc = sorted(rows, key=sort_key([OrderBy("t")]))
    assert [r["id"] for r in asc] == [IDS[0], IDS[2], IDS[3], IDS[1], IDS[4]]
    desc = sorted(rows, key=sort_key([OrderBy("t", descending=True)]))
    assert [r["id"] for r in desc] == [IDS[2], IDS[3], IDS[0], IDS[1], IDS[4]]


def test_text_sorts_by_code_point_like_collate_c() -> None:
    names = ["b", "B", "a", "É", "_x", "Z9", "ä"]
    rows: list[dict[str, Any]] = [{"id": IDS[i], "name": n} for i, n in enumerate(names)]
    ordered = [r["name"] for r in sorted(rows, key=sort_key([OrderBy("name")]))]
    assert ordered == ["B", "Z9", "_x", "a", "b", "É", "ä"]


def test_conditions_match_like_sql_with_null_never_matching_a_range() -> None:
    row = {"a": 5, "b": None}
    assert Eq("a", 5).matches(row)
    assert not Eq("a", 6).matches(row)
    assert AtLeast("a", 5).matches(row)
    assert not Below("a", 5).matches(row)
    assert not AtLeast("b", 0).matches(row)
    assert not Below("b", 0).matches(row)
