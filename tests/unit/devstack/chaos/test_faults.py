"""The fault schedule is the seed's: the same seed draws the same faults, every kind comes
once before any repeats, and another seed draws another schedule."""

from __future__ import annotations

from ccat_api.devstack.chaos.faults import SITE_FAULTS, plan


def test_the_same_seed_draws_the_same_schedule() -> None:
    assert plan(42, 24, SITE_FAULTS, 10.0) == plan(42, 24, SITE_FAULTS, 10.0)


def test_another_seed_draws_another_schedule() -> None:
    assert plan(42, 24, SITE_FAULTS, 10.0) != plan(43, 24, SITE_FAULTS, 10.0)


def test_every_kind_comes_once_before_any_repeats() -> None:
    schedule = plan(7, 20, SITE_FAULTS, 10.0)
    assert len(schedule) == 20
    assert sorted(f.kind for f in schedule[: len(SITE_FAULTS)]) == sorted(SITE_FAULTS)
    offsets = [f.at_s for f in schedule]
    assert offsets == sorted(offsets)
