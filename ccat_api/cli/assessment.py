"""What ``ccat-api status`` makes of a site status for a monitoring system: each finding with
its level, and the exit code of the worst (0 ok, 1 warning, 2 critical).

Critical: the site refuses writes or reads, or a write will not reach main without an
operator (Redis down or full, replica down, dead letters, main away too long, a write
waiting too long, the gateway itself unreachable). Warning: the site works but heads that way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

from ccat_api.client import SiteStatus
from ccat_api.config_status import StatusSettings


class Level(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Thresholds:
    """The ``status_*`` settings (``StatusSettings``, where their defaults live), by the names
    of the command's options."""

    warn_pending_age_s: float
    critical_pending_age_s: float
    critical_main_unreachable_s: float
    critical_dead_letters: int
    warn_replica_lag_s: float
    warn_memory_fraction: float

    @classmethod
    def from_settings(cls, settings: StatusSettings, **overrides: float | int | None) -> Thresholds:
        """The settings' values, with each override that is not None in its place."""
        values = {f.name: getattr(settings, f"status_{f.name}") for f in fields(cls)}
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str


@dataclass(frozen=True)
class Assessment:
    findings: list[Finding]

    @property
    def level(self) -> Level:
        return max((f.level for f in self.findings), default=Level.OK)

    def summary(self) -> str:
        worst = [f.message for f in self.findings if f.level == self.level]
        return self.level.name + (f": {'; '.join(worst)}" if worst else "")

    def as_json(self) -> dict[str, object]:
        return {
            "level": self.level.label,
            "exit_code": int(self.level),
            "findings": [
                {"level": f.level.label, "check": f.check, "message": f.message}
                for f in self.findings
            ],
        }


def gateway_failed(message: str) -> Assessment:
    """The gateway gave no status: unreachable, or failing (5xx)."""
    return Assessment([Finding(Level.CRITICAL, "gateway", message)])


def assess(status: SiteStatus, limits: Thresholds) -> Assessment:
    findings: list[Finding] = []

    def found(level: Level, check: str, message: str) -> None:
        findings.append(Finding(level, check, message))

    secondary = status.site_type == "secondary"
    main = status.main
    if main.get("ok") is False:
        away_s = unreachable_s(main)
        if not secondary:
            # At the main site main is the gateway's own database: nothing works without it.
            found(Level.CRITICAL, "main", "main database unreachable")
        elif away_s is not None and away_s > limits.critical_main_unreachable_s:
            found(Level.CRITICAL, "main", f"main unreachable for {away_s:.0f} s")
        else:
            found(Level.WARNING, "main", "main unreachable" + _for(away_s))
    if status.redis is not None and not status.redis.ok and secondary:
        found(Level.CRITICAL, "redis", f"buffer unavailable (Redis: {status.redis.error})")
    buffer = status.buffer
    if buffer is not None:
        if buffer.dead_letters > limits.critical_dead_letters:
            found(Level.CRITICAL, "dead_letters", f"{buffer.dead_letters} dead letter(s)")
        used = buffer.memory_used_fraction
        if buffer.near_capacity:
            found(Level.CRITICAL, "memory", "buffer near capacity: critical writes refused")
        elif used is not None and used > limits.warn_memory_fraction:
            found(Level.WARNING, "memory", f"buffer's Redis at {used:.0%} of maxmemory")
        pending_s = buffer.oldest_pending_age_s
        if pending_s is not None and pending_s > limits.critical_pending_age_s:
            found(Level.CRITICAL, "pending_age", f"oldest pending write {pending_s:.0f} s old")
        elif pending_s is not None and pending_s > limits.warn_pending_age_s:
            found(Level.WARNING, "pending_age", f"oldest pending write {pending_s:.0f} s old")
    replica = status.replica
    if replica is not None:
        if not replica.ok:
            found(Level.CRITICAL, "replica", f"replica down ({replica.error or 'no answer'})")
        elif replica.apply_lag_s is not None and replica.apply_lag_s > limits.warn_replica_lag_s:
            found(Level.WARNING, "replica_lag", f"replica {replica.apply_lag_s:.0f} s behind")
    processor = (status.processor or {}).get("state")
    if processor in ("absent", "stopped", "crashed"):
        found(Level.WARNING, "processor", f"processor {processor}")
    for reason in status.degraded:
        # Both stop writes reaching main until a person acts (a held replay: a migration of
        # main or an upgrade of this site).
        stopped = reason.startswith(("writes are refused", "replay held"))
        found(Level.CRITICAL if stopped else Level.WARNING, "degraded", reason)
    return Assessment(findings)


def unreachable_s(main: dict[str, object]) -> float | None:
    since, checked = main.get("unreachable_since"), main.get("checked_at")
    if isinstance(since, int | float) and isinstance(checked, int | float):
        return max(0.0, float(checked) - float(since))
    return None  # a gateway from before the field was added


def _for(seconds: float | None) -> str:
    return "" if seconds is None else f" for {seconds:.0f} s"
