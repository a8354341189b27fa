from __future__ import annotations

import asyncio

import pytest

from ccat_api.waits import Backoff, cancel_and_wait


def test_backoff_grows_then_stays_under_the_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0)
    delays = [backoff.next_delay_s() for _ in range(12)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(1.0 <= d <= 2.0 for d in delays[6:])
    backoff.reset()
    assert backoff.next_delay_s() <= 0.1


async def test_cancel_and_wait_stops_the_task_and_drops_what_it_was_told_to() -> None:
    stopped = asyncio.Event()

    async def cleans_up_badly() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()
            raise OSError("connection already closed")

    task = asyncio.create_task(cleans_up_badly())
    await asyncio.sleep(0)
    await cancel_and_wait(task, OSError)
    assert stopped.is_set()
    assert task.done()


async def test_cancel_and_wait_lets_an_error_it_was_not_told_about_through() -> None:
    async def fails_on_the_way_out() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            raise KeyError("a bug")

    task = asyncio.create_task(fails_on_the_way_out())
    await asyncio.sleep(0)
    with pytest.raises(KeyError):
        await cancel_and_wait(task, OSError)


async def test_cancel_and_wait_does_not_swallow_the_callers_own_cancellation() -> None:
    inner_started = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            inner_started.set()
            await asyncio.sleep(60)
        finally:
            # Still stopping when the caller is cancelled in turn.
            await asyncio.sleep(0.05)

    async def owner() -> str:
        inner = asyncio.create_task(slow_to_stop())
        await inner_started.wait()
        await cancel_and_wait(inner)
        return "carried on after being cancelled"

    running = asyncio.create_task(owner())
    await inner_started.wait()
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_cancel_and_wait_of_nothing_is_nothing() -> None:
    await cancel_and_wait(None)
