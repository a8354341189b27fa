"""A list route's filters and order as the merged reader takes them."""

from __future__ import annotations

from ccat_api.api.pages import equal_to, ordered
from ccat_api.buffering.query import Eq, OrderBy


def test_equal_to_leaves_out_only_the_filters_not_named() -> None:
    assert equal_to(route_id=None, status="failed", offset_s=0) == [
        Eq("status", "failed"),
        Eq("offset_s", 0),
    ]


def test_ordered_reads_a_leading_minus_as_descending() -> None:
    assert ordered("-created_at") == [OrderBy("created_at", descending=True)]
    assert ordered("logged_at") == [OrderBy("logged_at")]
