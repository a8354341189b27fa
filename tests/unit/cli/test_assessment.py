from __future__ import annotations

from typing import Any

import pytest

from ccat_api.cli.assessment import Level, Thresholds, assess
from ccat_api.client import BufferStatus, ReplicaStatus, SiteStatus
from ccat_api.config_status import StatusSettings
from ccat_api.live.models import RedisStatus

LIMITS = Thresholds(
    warn_pending_age_s=300,
    critical_pending_age_s=3600,
    critical_main_unreachable_s=900,
    critical_dead_letters=0,
    warn_replica_lag_s=60,
    warn_memory_fraction=0.75,
)


def site(**changes: Any) -> SiteStatus:
    """A secondary site with nothing to report; ``buffer``/``replica`` take field changes."""
    buffer = BufferStatus(
        depth=0, oldest_pending_age_s=None, awaiting_replica=0, dead_letters=0,
        accept_rate_tx_s=0.0, drain_rate_tx_s=0.0, estimated_drain_s=0.0,
    )  # fmt: skip
    replica = ReplicaStatus(ok=True, apply_lag_s=0.0)
    fields: dict[str, Any] = {
        "site": "obs", "site_type": "secondary", "sampled_at": 0.0,
        "main": {"ok": True, "checked_at": 100.0},
        "replica": replica.model_copy(update=changes.pop("replica", {})),
        "buffer": buffer.model_copy(update=changes.pop("buffer", {})),
        "processor": {"state": "idle"}, "counters": {}, "redis": RedisStatus(ok=True),
    }  # fmt: skip
    return SiteStatus.model_validate({**fields, **changes})


def away(seconds: float) -> dict[str, Any]:
    return {
        "ok": False,
        "checked_at": 1000.0,
        "error": "timeout",
        "unreachable_since": 1000.0 - seconds,
    }


def test_a_quiet_site_is_ok() -> None:
    assessment = assess(site(), LIMITS)
    assert (assessment.level, assessment.findings, assessment.summary()) == (Level.OK, [], "OK")


@pytest.mark.parametrize(
    ("changes", "level", "summary"),
    [
        ({"main": away(60)}, Level.WARNING, "main unreachable for 60 s"),
        ({"main": away(901)}, Level.CRITICAL, "main unreachable for 901 s"),
        ({"main": {"ok": False, "error": "timeout"}}, Level.WARNING, "main unreachable"),
        ({"main": {"ok": None, "error": "not probed yet"}}, Level.OK, ""),
        ({"site_type": "main", "main": {"ok": False}}, Level.CRITICAL, "main database unreachable"),
        ({"buffer": {"oldest_pending_age_s": 301.0}}, Level.WARNING, "oldest pending write 301 s old"),
        ({"buffer": {"oldest_pending_age_s": 3601.0}}, Level.CRITICAL, "oldest pending write 3601 s old"),
        ({"buffer": {"dead_letters": 1}}, Level.CRITICAL, "1 dead letter(s)"),
        ({"buffer": {"memory_used_fraction": 0.76}}, Level.WARNING, "buffer's Redis at 76% of maxmemory"),
        ({"buffer": {"memory_used_fraction": 0.5}}, Level.OK, ""),
        ({"buffer": {"memory_used_fraction": 0.91, "near_capacity": True}}, Level.CRITICAL,
         "buffer near capacity: critical writes refused"),
        ({"replica": {"apply_lag_s": 61.0}}, Level.WARNING, "replica 61 s behind"),
        ({"replica": {"ok": False, "error": "refused"}}, Level.CRITICAL, "replica down (refused)"),
        ({"processor": {"state": "absent"}}, Level.WARNING, "processor absent"),
        ({"processor": {"state": "standby"}}, Level.OK, ""),
        ({"redis": RedisStatus(ok=False, error="refused"), "buffer": None, "processor": None},
         Level.CRITICAL, "buffer unavailable (Redis: refused)"),
        ({"degraded": ["writes are refused: no AOF"]}, Level.CRITICAL, "writes are refused: no AOF"),
        ({"degraded": ["tracker crashed 3 s ago"]}, Level.WARNING, "tracker crashed 3 s ago"),
    ],
)  # fmt: skip
def test_each_finding_has_its_level(changes: dict[str, Any], level: Level, summary: str) -> None:
    assessment = assess(site(**changes), LIMITS)
    assert assessment.level == level
    assert assessment.summary() == (f"{level.name}: {summary}" if summary else level.name)


def test_the_worst_finding_sets_the_exit_code_and_the_summary_names_only_those() -> None:
    assessment = assess(
        site(main=away(60), buffer={"dead_letters": 2}, processor={"state": "stopped"}), LIMITS
    )
    assert assessment.as_json() == {
        "level": "critical",
        "exit_code": 2,
        "findings": [
            {"level": "warning", "check": "main", "message": "main unreachable for 60 s"},
            {"level": "critical", "check": "dead_letters", "message": "2 dead letter(s)"},
            {"level": "warning", "check": "processor", "message": "processor stopped"},
        ],
    }
    assert assessment.summary() == "CRITICAL: 2 dead letter(s)"


def test_dead_letters_below_the_threshold_pass() -> None:
    limits = Thresholds.from_settings(StatusSettings(), critical_dead_letters=3)
    assert assess(site(buffer={"dead_letters": 3}), limits).level == Level.OK


def test_thresholds_come_from_the_status_settings_and_options_override_them() -> None:
    two_dead = site(buffer={"dead_letters": 2})
    defaults = Thresholds.from_settings(StatusSettings())
    assert assess(two_dead, defaults).level == Level.CRITICAL
    tolerant = Thresholds.from_settings(StatusSettings(status_critical_dead_letters=2))
    assert assess(two_dead, tolerant).level == Level.OK
    # An option left out (None) keeps the setting; one given wins over it.
    kept = Thresholds.from_settings(
        StatusSettings(status_critical_dead_letters=2), critical_dead_letters=None
    )
    assert kept.critical_dead_letters == 2
    strict = Thresholds.from_settings(
        StatusSettings(status_critical_dead_letters=2), critical_dead_letters=1
    )
    assert assess(two_dead, strict).level == Level.CRITICAL
