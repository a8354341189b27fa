"""Where a source stands in the sky over a site: altitude and azimuth over a day, and an
altitude heatmap (day x time of day) over a date range. Computed with astropy (ICRS to AltAz
with the site's location; solar-system bodies from astropy's built-in ephemeris), without
atmospheric refraction, and cached by day (``DayCache``, bounded in bytes): the same
question, or a heatmap over days already asked about, is answered without recomputing.

No network is needed: astropy's bundled Earth-orientation tables are used and its automatic
downloads are switched off (a gateway at the observatory may have no internet at all).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from cachetools import LRUCache

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


DayKey = tuple[Target, SiteLocation, date, int]


class DayCache:
    """Altitude/azimuth curves by (target, site, UTC day, step), bounded by their size.

    Cached per day, not per request: a heatmap and the curves of the days inside it share
    entries, and a size bound (rather than a count) holds however fine the step. One day at
    a one-minute step is 23 KiB, so the default 64 MiB holds about 2,800 such days.
    Requests compute in worker threads, hence the lock.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._days: LRUCache[DayKey, np.ndarray] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda a: a.nbytes
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def days(
        self, target: Target, site: SiteLocation, days: list[date], step_minutes: int
    ) -> list[np.ndarray]:
        """Each day's curve, shape (2, samples per day); computes the missing days at once."""
        keys = [(target, site, d, step_minutes) for d in days]
        with self._lock:
            found = {k: self._days[k] for k in keys if k in self._days}
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        missing = [k for k in keys if k not in found]
        if missing:
            times = tuple(t for k in missing for t in day_times(k[2], step_minutes))
            computed = np.split(_altaz(target, site, times), len(missing), axis=1)
            with self._lock:
                for key, values in zip(missing, computed, strict=True):
                    values.setflags(write=False)
                    found[key] = values
                    # A day larger than the whole cache is answered but not kept.
                    if values.nbytes <= self._days.maxsize:
                        self._days[key] = values
        return [found[k] for k in keys]

    def clear(self) -> None:
        with self._lock:
            self._days.clear()
            self.hits = self.misses = 0


CACHE = DayCache()


def constant_azimuth_deg(minimum_deg: float, maximum_deg: float) -> float:
    """The middle of an azimuth range swept from ``minimum_deg`` clockwise to ``maximum_deg``,
    which may cross north (350 to 10 is centred on 0, not on 180)."""
    return (minimum_deg + ((maximum_deg - minimum_deg) % 360) / 2) % 360


def _altaz(target: Target, site: SiteLocation, times: tuple[datetime, ...]) -> np.ndarray:
    """Altitude and azimuth in degrees, shape (2, len(times))."""
    if target.source_type == "constant_elevation":
        assert target.elevation_deg is not None
        azimuth = constant_azimuth_deg(target.azimuth_min_deg or 0.0, target.azimuth_max_deg or 0.0)
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
    with warnings.catch_warnings():
        # Beyond the bundled Earth-orientation tables astropy extrapolates and says so, and
        # outside the years its leap-second table knows (before 1960, a few years ahead)
        # ERFA calls the year dubious: seconds at most, far below what scheduling needs.
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", ErfaWarning)
        obstime = Time(list(times), scale="utc")
        frame = AltAz(obstime=obstime, location=location)
        if target.source_type == "fixed":
            coord = SkyCoord(ra=target.ra_deg * u.deg, dec=target.dec_deg * u.deg, frame="icrs")
        else:
            assert target.body is not None
            coord = get_body(target.body, obstime, location)
        local = coord.transform_to(frame)
    return np.vstack([local.alt.deg, local.az.deg])


def curve(target: Target, site: SiteLocation, day: date, step_minutes: int) -> dict[str, Any]:
    times = day_times(day, step_minutes)
    alt, az = CACHE.days(target, site, [day], step_minutes)[0]
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
    grid = np.vstack([curve[0] for curve in CACHE.days(target, site, days, step_minutes)])
    return {
        "dates": [d.isoformat() for d in days],
        "times_utc": [t.strftime("%H:%M") for t in day_times(start, step_minutes)],
        "altitude_deg": np.round(grid, 2).tolist(),
    }
