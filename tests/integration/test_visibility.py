"""Visibility from the gateway against an independent computation from textbook formulas
(Meeus, Astronomical Algorithms: IAU 1982 sidereal time, rigorous precession from J2000)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ccat_api.config import Settings
from ccat_api.db.seed import SITES
from tests.integration.conftest import Tokens
from tests.support import client, serve

FYST = SITES[0]
LATITUDE_DEG, LONGITUDE_DEG = float(FYST["latitude_deg"]), float(FYST["longitude_deg"])  # type: ignore[arg-type]
ORION_KL = (83.8221, -5.3911)  # seeded as source 1
# Nutation, aberration, UT1-UTC and polar motion are left out here; together they stay well
# under a minute of arc.
TOLERANCE_DEG = 0.05


def _julian_day(t: datetime) -> float:
    return t.timestamp() / 86400.0 + 2440587.5


def _precess(ra_deg: float, dec_deg: float, jd: float) -> tuple[float, float]:
    t = (jd - 2451545.0) / 36525.0
    zeta = math.radians((2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) / 3600)
    z = math.radians((2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) / 3600)
    theta = math.radians((2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) / 3600)
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    a = math.cos(dec) * math.sin(ra + zeta)
    b = math.cos(theta) * math.cos(dec) * math.cos(ra + zeta) - math.sin(theta) * math.sin(dec)
    c = math.sin(theta) * math.cos(dec) * math.cos(ra + zeta) + math.cos(theta) * math.sin(dec)
    return math.degrees(math.atan2(a, b) + z) % 360, math.degrees(math.asin(c))


def altitude_azimuth(ra_deg: float, dec_deg: float, t: datetime) -> tuple[float, float]:
    jd = _julian_day(t)
    centuries = (jd - 2451545.0) / 36525.0
    gmst = (
        280.46061837 + 360.98564736629 * (jd - 2451545.0)
        + 0.000387933 * centuries**2 - centuries**3 / 38710000.0
    )  # fmt: skip
    ra, dec = _precess(ra_deg, dec_deg, jd)
    hour_angle = math.radians((gmst + LONGITUDE_DEG - ra) % 360)
    lat, d = math.radians(LATITUDE_DEG), math.radians(dec)
    alt = math.asin(
        math.sin(lat) * math.sin(d) + math.cos(lat) * math.cos(d) * math.cos(hour_angle)
    )
    az = math.atan2(
        math.sin(hour_angle),
        math.cos(hour_angle) * math.sin(lat) - math.tan(d) * math.cos(lat),
    )
    return math.degrees(alt), (math.degrees(az) + 180.0) % 360


async def test_altitude_of_a_fixed_source_matches_an_independent_computation(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.viewer) as http:
        r = await http.get(
            "/sources/1/visibility", params={"date": "2026-03-01", "step_minutes": 30}
        )
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["site_id"] == 1
    assert len(body["samples"]) == 48
    for sample in body["samples"]:
        t = datetime.fromisoformat(sample["time"]).astimezone(UTC)
        alt, az = altitude_azimuth(*ORION_KL, t)
        assert abs(sample["altitude_deg"] - alt) < TOLERANCE_DEG, (sample, alt)
        if abs(alt) < 80:  # azimuth is ill-defined near the zenith
            difference = abs((sample["azimuth_deg"] - az + 180) % 360 - 180)
            assert difference < 0.1, (sample, az)
    highest = max(body["samples"], key=lambda s: s["altitude_deg"])
    assert body["max_altitude_deg"] == highest["altitude_deg"]
    # Orion culminates about 17 degrees from the zenith at -23 degrees latitude.
    assert 70 < body["max_altitude_deg"] < 75


async def test_heatmap_rows_are_the_daily_curves(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.viewer) as http:
        heat = (
            await http.get(
                "/sources/1/visibility/heatmap",
                params={"start": "2026-03-01", "end": "2026-03-03", "step_minutes": 60},
            )
        ).json()
        day = (
            await http.get(
                "/sources/1/visibility", params={"date": "2026-03-02", "step_minutes": 60}
            )
        ).json()
        ces = (
            await http.get(
                "/sources/29/visibility", params={"date": "2026-03-02", "step_minutes": 60}
            )
        ).json()
        too_long = await http.get(
            "/sources/1/visibility/heatmap", params={"start": "2026-01-01", "end": "2026-06-01"}
        )
        uneven = await http.get(
            "/sources/1/visibility", params={"date": "2026-03-02", "step_minutes": 7}
        )
        mars = await http.get(
            "/sources/22/visibility", params={"date": "2026-03-02", "step_minutes": 60}
        )
    assert heat["dates"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert len(heat["times_utc"]) == 24
    assert [round(a, 2) for a in heat["altitude_deg"][1]] == [
        round(s["altitude_deg"], 2) for s in day["samples"]
    ]
    # One sidereal day is four minutes shorter: the source rises a little earlier each day.
    assert heat["altitude_deg"][0] != heat["altitude_deg"][2]
    assert {s["altitude_deg"] for s in ces["samples"]} == {45.0}
    assert too_long.status_code == 422
    assert too_long.json()["field"] == "end"
    assert uneven.status_code == 422
    assert mars.status_code == 200
    assert all(-90 <= s["altitude_deg"] <= 90 for s in mars.json()["samples"])
