"""Waiting on asyncio events with a bound: the loops of the processor, the tracker and the
live feeds all sleep until there is work, a stop, or a timeout, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib


async def first_of(*events: asyncio.Event, timeout_s: float | None) -> None:
    """Until any of ``events`` is set, or ``timeout_s`` passes (None: no bound)."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
