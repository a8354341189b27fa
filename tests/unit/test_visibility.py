"""The visibility cache and the constant-elevation azimuth, without a database: astropy runs
here for real (fixed sources need no ephemeris download)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from ccat_api import visibility
from ccat_api.visibility import DayCache, SiteLocation, Target, constant_azimuth_deg

CERRO_CHAJNANTOR = SiteLocation(-22.9856, -67.7404, 5612.0)
ORION_KL = Target("fixed", ra_deg=83.80917, dec_deg=-5.37250)


def test_a_repeated_curve_is_answered_from_the_cache() -> None:
    cache = DayCache()
    first = cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 1)], 30)[0]
    assert (cache.hits, cache.misses) == (0, 1)
    again = cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 1)], 30)[0]
    assert (cache.hits, cache.misses) == (1, 1)
    assert again is first


def test_a_heatmap_reuses_days_already_computed_and_computes_only_the_rest() -> None:
    cache = DayCache()
    alone = cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 2)], 60)[0]
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    together = cache.days(ORION_KL, CERRO_CHAJNANTOR, days, 60)
    assert (cache.hits, cache.misses) == (1, 3)
    assert together[1] is alone
    # Days computed in one batch equal the same days computed one by one.
    fresh = DayCache()
    for day, curve in zip(days, together, strict=True):
        np.testing.assert_allclose(fresh.days(ORION_KL, CERRO_CHAJNANTOR, [day], 60)[0], curve)


def test_the_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used_day() -> None:
    one_day_bytes = 2 * (24 * 60 // 60) * 8
    cache = DayCache(max_bytes=2 * one_day_bytes)
    for day in (1, 2, 3):
        cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, day)], 60)
    cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 3)], 60)
    assert cache.hits == 1
    cache.days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 1)], 60)
    assert cache.misses == 4


def test_different_steps_sites_or_sources_are_different_entries() -> None:
    cache = DayCache()
    day = [date(2026, 3, 1)]
    cache.days(ORION_KL, CERRO_CHAJNANTOR, day, 60)
    cache.days(ORION_KL, CERRO_CHAJNANTOR, day, 30)
    cache.days(ORION_KL, SiteLocation(50.9, 6.9, 60.0), day, 60)
    cache.days(Target("fixed", ra_deg=10.0, dec_deg=-30.0), CERRO_CHAJNANTOR, day, 60)
    assert (cache.hits, cache.misses) == (0, 4)


def test_cached_curves_cannot_be_changed_by_a_caller() -> None:
    curve = DayCache().days(ORION_KL, CERRO_CHAJNANTOR, [date(2026, 3, 1)], 60)[0]
    with pytest.raises(ValueError, match="read-only"):
        curve[0, 0] = 0.0


@pytest.mark.parametrize(
    ("minimum", "maximum", "middle"),
    [(100.0, 200.0, 150.0), (350.0, 10.0, 0.0), (300.0, 60.0, 0.0), (10.0, 350.0, 180.0)],
)
def test_constant_elevation_azimuth_is_the_middle_of_the_range_across_north(
    minimum: float, maximum: float, middle: float
) -> None:
    assert constant_azimuth_deg(minimum, maximum) == pytest.approx(middle)


def test_a_constant_elevation_source_keeps_its_elevation_all_day() -> None:
    target = Target(
        "constant_elevation", elevation_deg=45.0, azimuth_min_deg=340, azimuth_max_deg=20
    )
    result = visibility.curve(target, CERRO_CHAJNANTOR, date(2026, 3, 1), 60)
    assert {s["altitude_deg"] for s in result["samples"]} == {45.0}
    assert {s["azimuth_deg"] for s in result["samples"]} == {0.0}


@pytest.mark.parametrize("year", [1, 1900, 2035, 9999])
@pytest.mark.parametrize(
    "target", [Target("fixed", ra_deg=83.8, dec_deg=-5.4), Target("solar_system", body="mars")]
)
def test_a_curve_for_a_year_outside_the_leap_second_table_computes_without_warning(
    year: int, target: Target
) -> None:
    """Found by the fuzzer: ERFA calls such years dubious, and the warning escaped the
    filter (warnings are errors in tests, a 500 then; noise in production logs)."""
    curve = visibility.curve(target, CERRO_CHAJNANTOR, date(year, 6, 1), 240)
    assert -90 <= curve["max_altitude_deg"] <= 90
