"""The history's samples without services: rates between periods, no rate across a gap or a
counter reset, one sample per period and a capped count in a process's own store."""

from __future__ import annotations

from typing import Any

from ccat_api.live.history import HistoryRecorder, MemoryHistory, history_sample
from ccat_api.live.models import BufferStatus, ReplicaStatus, SiteStatus

INTERVAL_S = 10.0


def status(depth: int, accepted: int, applied: int, **changes: Any) -> SiteStatus:
    buffer = BufferStatus(
        depth=depth, oldest_pending_age_s=4.0 if depth else None, awaiting_replica=0,
        dead_letters=0, accept_rate_tx_s=None, drain_rate_tx_s=None, estimated_drain_s=None,
    )  # fmt: skip
    fields: dict[str, Any] = {
        "site": "obs", "site_type": "secondary", "sampled_at": 0.0, "main": {"ok": True},
        "replica": ReplicaStatus(ok=True, apply_lag_s=1.5), "buffer": buffer,
        "processor": {"state": "idle"}, "counters": {"accepted": accepted, "applied": applied},
    }  # fmt: skip
    return SiteStatus.model_validate({**fields, **changes})


def test_rates_and_the_drain_estimate_come_from_the_previous_periods_counters() -> None:
    before = history_sample(status(10, 100, 90), at=1000.0, previous=None, interval_s=INTERVAL_S)
    assert (before.accept_rate_tx_s, before.drain_rate_tx_s) == (None, None)
    after = history_sample(status(30, 140, 110), at=1010.0, previous=before, interval_s=INTERVAL_S)
    assert (after.depth, after.accept_rate_tx_s, after.drain_rate_tx_s) == (30, 4.0, 2.0)
    assert after.estimated_drain_s == 15.0
    assert (after.oldest_pending_age_s, after.replica_apply_lag_s, after.main_ok) == (
        4.0, 1.5, True,
    )  # fmt: skip


def test_no_rate_across_a_gap_or_a_counter_reset() -> None:
    before = history_sample(status(10, 100, 90), at=1000.0, previous=None, interval_s=INTERVAL_S)
    late = history_sample(status(10, 200, 190), at=1040.0, previous=before, interval_s=INTERVAL_S)
    assert (late.accept_rate_tx_s, late.drain_rate_tx_s) == (None, None)
    reset = history_sample(status(0, 3, 3), at=1010.0, previous=before, interval_s=INTERVAL_S)
    assert (reset.accept_rate_tx_s, reset.drain_rate_tx_s) == (None, None)
    assert reset.estimated_drain_s == 0.0  # empty is empty, rate or not


def test_a_site_without_a_buffer_samples_mains_reachability_only() -> None:
    main = status(0, 0, 0, site_type="main", buffer=None, replica=None, counters={})
    sample = history_sample(main, at=1000.0, previous=None, interval_s=INTERVAL_S)
    assert sample.model_dump(exclude_none=True) == {"at": 1000.0, "main_ok": True}


async def test_a_process_keeps_one_sample_per_period_and_at_most_its_cap() -> None:
    now = [1003.0]
    store = MemoryHistory(max_samples=3)

    async def current() -> SiteStatus:
        return status(1, 1, 0)

    recorder = HistoryRecorder(
        current, store, interval_s=INTERVAL_S, retention_s=3600, clock=lambda: now[0]
    )
    taken = await recorder.run_once()
    assert taken is not None
    assert taken.at == 1000.0
    assert await recorder.run_once() is None
    assert await store.add(taken) is False
    for _ in range(4):
        now[0] += INTERVAL_S
        assert await recorder.run_once() is not None
    assert [s.at for s in await recorder.recent(None)] == [1020.0, 1030.0, 1040.0]
    assert [s.at for s in await recorder.recent(1030.0)] == [1040.0]


def test_periods_start_on_whole_milliseconds() -> None:
    recorder = HistoryRecorder(
        lambda: None,  # type: ignore[arg-type, return-value]
        MemoryHistory(max_samples=1),
        interval_s=0.2,
        retention_s=60,
    )
    assert recorder.period_start(1_796_563_412.4999) == 1_796_563_412.4
    assert recorder.period_start(1_796_563_412.6) == 1_796_563_412.6
