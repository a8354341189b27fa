"""Loops that must not stop: the processor, the LSN tracker, main's probe and the durability
check each run under ``supervise``.

What a loop expects (Redis, main or the replica away) it handles itself. Whatever escapes it
is a bug, and a bug must cost a restart, not the site's replay: the supervisor logs it with
its traceback, counts it (``ccat_loop_crashes_total``), records it in ``Faults`` (which
/health, the site status and the processor's heartbeat report as degraded for
``DEGRADED_FOR_S``), and restarts the loop after a capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ccat_api.metrics import LOOP_CRASHES
from ccat_api.waits import Backoff, sleep_or_stop

log = logging.getLogger(__name__)

# Long enough for a monitor polling /health every minute or so to see a crash the loop
# recovered from within a second.
DEGRADED_FOR_S = 300.0
RESTART_INITIAL_S = 0.5
RESTART_MAX_S = 30.0
# A loop that ran this long before it crashed starts its restart backoff over.
STABLE_AFTER_S = 60.0


@dataclass(frozen=True)
class Crash:
    loop: str
    error: str
    at: float  # wall-clock seconds, comparable across the site's processes

    def describe(self, now: float) -> str:
        return (
            f"the {self.loop} loop crashed {max(0.0, now - self.at):.0f} s ago and was"
            f" restarted: {self.error}"
        )


class Faults:
    """The crashes of one process's supervised loops."""

    def __init__(self) -> None:
        self.crashes = 0
        self.last: Crash | None = None

    def record(self, loop: str, exc: BaseException) -> Crash:
        self.crashes += 1
        message = str(exc).splitlines()[0] if str(exc).strip() else ""
        self.last = Crash(loop, f"{type(exc).__name__}: {message}".rstrip(": "), time.time())
        return self.last

    def fields(self) -> dict[str, str]:
        """What the processor's heartbeat carries, so every gateway of the site sees it."""
        if self.last is None:
            return {}
        return {
            "crashes": str(self.crashes),
            "last_crash": f"{self.last.loop}: {self.last.error}",
            "last_crash_at": str(int(self.last.at * 1000)),
        }


def crash_from_heartbeat(fields: dict[str, str]) -> Crash | None:
    """The crash another process reported in its heartbeat (``Faults.fields``), if any."""
    at_ms = fields.get("last_crash_at")
    if not at_ms:
        return None
    loop, _, error = fields.get("last_crash", "").partition(": ")
    return Crash(loop or "worker", error, int(at_ms) / 1000)


async def supervise(
    loop: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    faults: Faults,
    on_crash: Callable[[Crash], Awaitable[None]] | None = None,
) -> None:
    """Run ``run()`` until ``stop`` is set, restarting it whenever it raises or returns."""
    backoff = Backoff(RESTART_INITIAL_S, RESTART_MAX_S)
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
        except Exception as exc:
            failure: BaseException = exc
        else:
            if stop.is_set():
                return
            failure = RuntimeError("returned without being stopped")
        if time.monotonic() - started > STABLE_AFTER_S:
            backoff.reset()
        delay_s = backoff.next_delay_s()
        crash = faults.record(loop, failure)
        LOOP_CRASHES.labels(loop).inc()
        log.error(
            "the %s loop crashed; restarting it in %.1f s", loop, delay_s,
            exc_info=failure, extra={"event": "loop_crashed", "loop": loop},
        )  # fmt: skip
        if on_crash is not None:
            try:
                await on_crash(crash)
            except Exception:
                log.warning("could not report the %s loop's crash", loop, exc_info=True)
        await sleep_or_stop(stop, delay_s)
