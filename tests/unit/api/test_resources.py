"""A list's filters as the merged reader takes them."""

from __future__ import annotations

from pydantic import BaseModel

from ccat_api.api.resources import conditions
from ccat_api.buffering.query import Eq, NameLike, OneOf
from ccat_api.db.models import TransferStatus


class _Filters(BaseModel):
    q: str | None = None
    status: list[TransferStatus] | None = None
    route_id: int | None = None


def test_conditions_match_a_list_by_its_values_q_by_name_and_the_rest_by_equality() -> None:
    filters = _Filters(q="deep", status=[TransferStatus.FAILED, "pending"], route_id=3)
    assert conditions(filters) == [
        NameLike("name", "deep"),
        OneOf("status", ("failed", "pending")),
        Eq("route_id", 3),
    ]
    statuses = conditions(filters)[1]
    assert isinstance(statuses, OneOf)
    assert all(type(v) is str for v in statuses.values)  # the values, not the enum members


def test_conditions_leave_out_the_filters_not_given() -> None:
    assert conditions(_Filters()) == []
