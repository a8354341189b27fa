from __future__ import annotations

import pytest

from ccat_api.buffering.durability import durability_problem

DURABLE = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}


def test_a_durable_configuration_has_no_problem() -> None:
    assert durability_problem(DURABLE) is None


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("appendonly", "no", "appendonly"),
        ("appendfsync", "everysec", "appendfsync"),
        ("maxmemory-policy", "allkeys-lru", "noeviction"),
    ],
)
def test_each_way_to_lose_a_write_is_named(setting: str, value: str, named: str) -> None:
    problem = durability_problem({**DURABLE, setting: value})
    assert problem is not None
    assert named in problem
