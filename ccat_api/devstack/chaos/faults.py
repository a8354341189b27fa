"""The fault schedule, drawn from the seed alone (the same seed, the same faults at the same
offsets), and the injectors that apply and heal each kind on a running stack. Faults of
different kinds may overlap; faults of one kind take turns."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ccat_api.devstack.chaos.fleet import GatewayFleet
from ccat_api.devstack.chaos.history import FaultRecord
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.wan import WanControl

SITE_FAULTS = (
    "redis_failover",  # kill -9 the Redis primary; Sentinel promotes its replica
    "processor_kill",  # kill -9 the processor, restart it after a while
    "gateway_kill",  # kill -9 one gateway, restart it after a while
    "wan_outage",  # the link to main holds every byte (and sometimes drops connections)
    "wan_delay",  # the link's one-way delay goes up to 0.4-1.5 s
    "replica_pause",  # the site's replica stops replaying WAL
)
MAIN_FAILOVER = "main_failover"  # kill -9 main's primary, promote its standby
FAILOVER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PlannedFault:
    at_s: float
    kind: str
    duration_s: float
    target: int = 0  # which gateway
    variant: int = 0  # wan_outage: 1 also cuts open connections; wan_delay: the delay in ms


def plan(seed: int, count: int, kinds: tuple[str, ...], mean_gap_s: float) -> list[PlannedFault]:
    """``count`` faults: every kind once (in a seeded order) while the count allows, then
    kinds drawn at random; start offsets a seeded gap apart."""
    rng = random.Random(f"{seed}:faults")
    order = list(kinds)
    rng.shuffle(order)
    chosen = order[:count] + [rng.choice(kinds) for _ in range(count - len(order))]
    faults = []
    at_s = rng.uniform(2.0, mean_gap_s)
    for kind in chosen:
        faults.append(_draw(rng, at_s, kind))
        at_s += rng.uniform(0.5 * mean_gap_s, 1.5 * mean_gap_s)
    return faults


def _draw(rng: random.Random, at_s: float, kind: str) -> PlannedFault:
    if kind == "redis_failover":
        return PlannedFault(at_s, kind, rng.uniform(1.0, 6.0))
    if kind == "processor_kill":
        return PlannedFault(at_s, kind, rng.uniform(0.0, 5.0))
    if kind == "gateway_kill":
        return PlannedFault(at_s, kind, rng.uniform(1.0, 5.0), target=rng.randrange(1_000))
    if kind == "wan_outage":
        return PlannedFault(at_s, kind, rng.uniform(3.0, 20.0), variant=rng.randrange(2))
    if kind == "wan_delay":
        return PlannedFault(at_s, kind, rng.uniform(5.0, 20.0), variant=rng.randrange(400, 1500))
    return PlannedFault(at_s, kind, rng.uniform(5.0, 25.0))


def main_failover_of(stack: Stack) -> Callable[[], Any] | None:
    """The stack's main failover, when it has one: ``fail_over_main()`` on a stack started
    with a standby at main (``StackConfig(main_standby=True)``)."""
    fail_over: Callable[[], Any] | None = getattr(stack, "fail_over_main", None)
    if callable(fail_over) and getattr(stack.config, "main_standby", False):
        return fail_over
    return None


class FaultInjector:
    def __init__(self, stack: Stack, fleet: GatewayFleet, base_delay_ms: int) -> None:
        self.stack = stack
        self.fleet = fleet
        self.base_delay_ms = base_delay_ms
        self.wan = WanControl(f"http://127.0.0.1:{stack.wan_control_port}")
        self._turns: dict[str, asyncio.Lock] = {}
        # One thread at a time touches the stack's process handles.
        self._stack_lock = asyncio.Lock()

    async def run(self, schedule: list[PlannedFault], started: float) -> list[FaultRecord]:
        """Every fault at its offset from ``started`` (time.monotonic()); returns once all
        have been applied and healed."""
        return list(await asyncio.gather(*(self._at(f, started) for f in schedule)))

    async def _at(self, fault: PlannedFault, started: float) -> FaultRecord:
        await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
        async with self._turns.setdefault(fault.kind, asyncio.Lock()):
            began = time.monotonic()
            try:
                note = await self.inject(fault)
            except Exception as exc:  # the campaign goes on; heal() repairs, the log says so
                note = f"FAILED: {exc!r}"
            return FaultRecord(fault.kind, began - started, time.monotonic() - began, note)

    async def inject(self, fault: PlannedFault) -> str:
        kind = fault.kind
        if kind == "redis_failover":
            return await asyncio.to_thread(self._redis_failover, fault.duration_s)
        if kind == "processor_kill":
            async with self._stack_lock:
                assert self.stack.processor is not None
                self.stack.processor.kill()
            await asyncio.sleep(fault.duration_s)
            async with self._stack_lock:
                await asyncio.to_thread(self.stack.start_processor)
            return f"down {fault.duration_s:.1f} s"
        if kind == "gateway_kill":
            index = fault.target % len(self.fleet.processes)
            async with self._stack_lock:
                self.fleet.kill(index)
            await asyncio.sleep(fault.duration_s)
            async with self._stack_lock:
                await asyncio.to_thread(self.fleet.start, index)
            return f"gateway {index} down {fault.duration_s:.1f} s"
        if kind == "wan_outage":
            await asyncio.to_thread(self.wan.down)
            if fault.variant:
                await asyncio.to_thread(self.wan.cut)
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(self.wan.up)
            return f"{fault.duration_s:.1f} s{', connections cut' if fault.variant else ''}"
        if kind == "wan_delay":
            await asyncio.to_thread(self.wan.set_delay, fault.variant)
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(self.wan.set_delay, self.base_delay_ms)
            return f"{fault.variant} ms one way for {fault.duration_s:.1f} s"
        if kind == "replica_pause":
            await asyncio.to_thread(self.stack.replica.psql, "SELECT pg_wal_replay_pause()")
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(self.stack.replica.psql, "SELECT pg_wal_replay_resume()")
            return f"{fault.duration_s:.1f} s"
        if kind == MAIN_FAILOVER:
            fail_over = main_failover_of(self.stack)
            assert fail_over is not None
            async with self._stack_lock:
                await asyncio.to_thread(fail_over)
            return "promoted main's standby"
        raise ValueError(f"unknown fault kind {kind!r}")

    def _redis_failover(self, down_s: float) -> str:
        redis_set = self.stack.redis_set
        assert redis_set is not None
        old = redis_set.primary_port()
        killed = redis_set.kill_primary()
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        new = old
        while new == old:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Sentinel failover from port {old}")
            time.sleep(0.1)
            try:
                new = redis_set.primary_port()
            except RuntimeError:
                new = old
        elected_s = FAILOVER_TIMEOUT_S - (deadline - time.monotonic())
        time.sleep(down_s)
        # Back as the new primary's replica (Sentinel reconfigures it); with one replica the
        # new primary takes writes again only then (min-replicas-to-write 1).
        killed.start()
        redis_set.wait_replicas_in_sync()
        return f"primary {old} -> {new} in {elected_s:.1f} s, old one back after {down_s:.1f} s"

    async def heal(self) -> None:
        """Everything back: link up at its usual delay, replica replaying, every process
        running, every Redis member back and in sync."""
        await asyncio.to_thread(self.wan.up)
        await asyncio.to_thread(self.wan.set_delay, self.base_delay_ms)
        await asyncio.to_thread(self.stack.replica.psql, "SELECT pg_wal_replay_resume()")
        async with self._stack_lock:
            await asyncio.to_thread(self.fleet.heal)
            if self.stack.processor is None or not self.stack.processor.running():
                await asyncio.to_thread(self.stack.start_processor)
        redis_set = self.stack.redis_set
        if redis_set is not None:
            for member in redis_set.members:
                if member.process is None:
                    await asyncio.to_thread(member.start)
            await asyncio.to_thread(redis_set.wait_replicas_in_sync)

    def close(self) -> None:
        self.wan.close()
