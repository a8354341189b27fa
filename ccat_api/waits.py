"""Waiting on asyncio events with a bound: the loops of the processor, the tracker and the
live feeds all sleep until there is work, a stop, or a timeout, whichever comes first; and
how long to wait before trying again after a failure."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (no thundering herd after an outage)."""

    initial_s: float
    max_s: float
    failures: int = 0

    def next_delay_s(self) -> float:
        self.failures += 1
        ceiling = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


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


async def cancel_and_wait(task: asyncio.Future[Any] | None, *ignored: type[BaseException]) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has stopped, dropping what it
    raised on the way out if it is one of ``ignored``. Waiting matters: a task still running
    after its owner closed a connection would use it. If the caller is itself being
    cancelled, that cancellation goes on (a bare ``suppress(CancelledError)`` would eat it)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except ignored:
        pass
