"""A supervised loop that raises is logged with its traceback, counted, recorded for /health
and restarted; one that is stopped is not."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from ccat_api import supervisor
from ccat_api.failpoints import FailpointError
from ccat_api.supervisor import Faults, crash_from_heartbeat, supervise


def crashes_counted(loop: str) -> float:
    return REGISTRY.get_sample_value("ccat_loop_crashes_total", {"loop": loop}) or 0.0


async def test_a_loop_that_raises_is_logged_counted_recorded_and_restarted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_INITIAL_S", 0.01)
    stop = asyncio.Event()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise FailpointError(f"failpoint boom {runs}")
        stop.set()

    faults = Faults()
    before = crashes_counted("flaky")
    with caplog.at_level(logging.ERROR, logger="ccat_api.supervisor"):
        await asyncio.wait_for(supervise("flaky", flaky, stop, faults=faults), 5)
    assert runs == 3
    assert crashes_counted("flaky") - before == 2
    assert faults.crashes == 2
    assert faults.last is not None
    assert faults.last.error == "FailpointError: failpoint boom 2"
    logged = [r for r in caplog.records if "flaky loop crashed" in r.getMessage()]
    assert len(logged) == 2
    assert all(r.exc_info and r.exc_info[0] is FailpointError for r in logged)


async def test_a_loop_that_returns_unstopped_is_restarted_and_a_stopped_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_INITIAL_S", 0.01)
    stop = asyncio.Event()
    runs = 0

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            stop.set()

    faults = Faults()
    await asyncio.wait_for(supervise("returns", returns, stop, faults=faults), 5)
    assert runs == 2
    assert faults.crashes == 1


async def test_the_crash_report_hook_failing_does_not_stop_the_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_INITIAL_S", 0.01)
    stop = asyncio.Event()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("first")
        stop.set()

    async def report(crash: supervisor.Crash) -> None:
        raise ConnectionError("redis is away too")

    await asyncio.wait_for(supervise("hooked", flaky, stop, faults=Faults(), on_crash=report), 5)
    assert runs == 2


def test_a_crash_travels_through_the_heartbeat_fields() -> None:
    faults = Faults()
    assert faults.fields() == {}
    faults.record("tracker", KeyError("upsert"))
    crash = crash_from_heartbeat(faults.fields())
    assert crash is not None
    assert (crash.loop, crash.error) == ("tracker", "KeyError: 'upsert'")
    assert faults.last is not None
    assert abs(crash.at - faults.last.at) < 0.001
    assert crash_from_heartbeat({"state": "idle"}) is None
