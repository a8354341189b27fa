"""Where a source stands in the sky over a site: altitude and azimuth over a day, and an
altitude heatmap (day x time of day) over a date range. Computed with astropy (ICRS to AltAz
with the site's location; solar-system bodies from astropy's built-in ephemeris), without
atmospheric refraction, and cached: the same question gets the same answer without
recomputing.

No network is needed: astropy's bundled Earth-orientation tables are used and its automatic
downloads are switched off (a gateway at the observatory may have no internet at all).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

MAX_HEATMAP_DAYS = 62


@dataclass(frozen=True, slots=True)
class SiteLocation:
    latitude_deg: float
    longitude_deg: float
    elevation_m: float


@dataclass(frozen=True, slots=True)
class Target:
    """What astropy needs to know of a source (hashable, so results can be cached)."""

    source_type: str
    ra_deg: float | None = None
    dec_deg: float | None = None
    body: str | None = None
    elevation_deg: float | None = None
    azimuth_min_deg: float | None = None
    azimuth_max_deg: float | None = None

    @classmethod
    def of(cls, source: dict[str, Any]) -> Target:
        return cls(**{f: source.get(f) for f in cls.__dataclass_fields__})  # type: ignore[arg-type]


def day_times(day: date, step_minutes: int) -> list[datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return [start + timedelta(minutes=m) for m in range(0, 24 * 60, step_minutes)]


def altaz(target: Target, site: SiteLocation, times: tuple[datetime, ...]) -> np.ndarray:
    """Altitude and azimuth in degrees, shape (2, len(times))."""
    return _altaz_cached(target, site, times).copy()


@lru_cache(maxsize=512)
def _altaz_cached(target: Target, site: SiteLocation, times: tuple[datetime, ...]) -> np.ndarray:
    if target.source_type == "constant_elevation":
        assert target.elevation_deg is not None
        azimuth = ((target.azimuth_min_deg or 0.0) + (target.azimuth_max_deg or 0.0)) / 2
        return np.vstack([np.full(len(times), target.elevation_deg), np.full(len(times), azimuth)])
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
    from astropy.time import Time
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    location = EarthLocation(
        lat=site.latitude_deg * u.deg, lon=site.longitude_deg * u.deg, height=site.elevation_m * u.m
    )
    obstime = Time(list(times), scale="utc")
    frame = AltAz(obstime=obstime, location=location)
    with warnings.catch_warnings():
        # Beyond the bundled Earth-orientation tables astropy extrapolates and says so;
        # the error (arcseconds) is far below what scheduling needs.
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", ErfaWarning)
        if target.source_type == "fixed":
            coord = SkyCoord(ra=target.ra_deg * u.deg, dec=target.dec_deg * u.deg, frame="icrs")
        else:
            assert target.body is not None
            coord = get_body(target.body, obstime, location)
        local = coord.transform_to(frame)
    return np.vstack([local.alt.deg, local.az.deg])


def curve(target: Target, site: SiteLocation, day: date, step_minutes: int) -> dict[str, Any]:
    times = day_times(day, step_minutes)
    alt, az = altaz(target, site, tuple(times))
    return {
        "samples": [
            {
                "time": t.isoformat(),
                "altitude_deg": round(float(a), 4),
                "azimuth_deg": round(float(z), 4),
            }
            for t, a, z in zip(times, alt, az, strict=True)
        ],
        "max_altitude_deg": round(float(alt.max()), 4),
        "time_of_max": times[int(alt.argmax())].isoformat(),
    }


def heatmap(
    target: Target, site: SiteLocation, start: date, end: date, step_minutes: int
) -> dict[str, Any]:
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    per_day = 24 * 60 // step_minutes
    times = tuple(t for d in days for t in day_times(d, step_minutes))
    alt, _ = altaz(target, site, times)
    grid = alt.reshape(len(days), per_day)
    return {
        "dates": [d.isoformat() for d in days],
        "times_utc": [t.strftime("%H:%M") for t in day_times(start, step_minutes)],
        "altitude_deg": np.round(grid, 2).tolist(),
    }
