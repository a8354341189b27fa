"""The WAN simulator over real loopback sockets: exact bytes both ways, delay, bandwidth."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from ccat_api.devstack.wan import WanSimulator, _Pipe
from tests.devstack.wan_loopback import (
    WAIT_S,
    Clients,
    MiB,
    Upstream,
    eventually,
    link_state,
    read_to_end,
    round_trip_s,
    running_sim,
    serving,
    sink,
    source_and_sink,
)

pytestmark = pytest.mark.timeout(30)


# --- forwarding --------------------------------------------------------------------------------


async def test_large_payload_round_trips_byte_exact(upstream: Upstream, clients: Clients) -> None:
    payload = random.randbytes(8 * MiB)
    async with running_sim(upstream.port, delay_ms=5) as sim:
        reader, writer = await clients.open(sim.listen_port("db"))

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        async with asyncio.timeout(WAIT_S):
            sender = asyncio.create_task(send())
            echoed = await reader.readexactly(len(payload))
            await sender
        assert echoed == payload
        assert bytes(upstream.received) == payload
        assert link_state(sim)["bytes_up"] == len(payload)
        assert link_state(sim)["bytes_down"] == len(payload)


async def test_independent_streams_both_ways_with_half_close(clients: Clients) -> None:
    up_payload, down_payload = random.randbytes(8 * MiB), random.randbytes(8 * MiB)
    async with (
        serving(source_and_sink(down_payload)) as upstream,
        running_sim(upstream.port, delay_ms=20) as sim,
    ):
        reader, writer = await clients.open(sim.listen_port("db"))

        async def send() -> None:
            writer.write(up_payload)
            await writer.drain()
            writer.write_eof()

        async with asyncio.timeout(WAIT_S):
            sender = asyncio.create_task(send())
            received = await reader.read()  # to EOF: the upstream's EOF must come through
            await sender
        assert received == down_payload
        await eventually(lambda: upstream.finished == 1, "upstream saw our EOF")
        assert bytes(upstream.received) == up_payload
        assert upstream.errors == []
        await eventually(lambda: link_state(sim)["active"] == 0, "proxy closed both sides")
        assert link_state(sim)["total"] == 1


async def test_half_close_reaches_the_other_side_before_close(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    reader, writer = await clients.open(wan.listen_port("db"))
    writer.write(b"request")
    writer.write_eof()
    # The echo server only answers EOF with EOF: this ends only if our EOF was forwarded alone.
    assert await read_to_end(reader) == b"request"
    await eventually(lambda: link_state(wan)["active"] == 0, "proxy closed both sides")
    assert upstream.finished == 1


async def test_many_concurrent_connections(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    async def one(index: int) -> bool:
        reader, writer = await clients.open(wan.listen_port("db"))
        payload = index.to_bytes(4) + random.randbytes(128 * 1024)
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload)) == payload

    async with asyncio.timeout(WAIT_S):
        results = await asyncio.gather(*(one(i) for i in range(50)))
    assert all(results)
    assert link_state(wan)["total"] == 50
    assert link_state(wan)["active"] == 50


# --- delay -------------------------------------------------------------------------------------


async def test_round_trip_is_twice_the_one_way_delay(upstream: Upstream, clients: Clients) -> None:
    async with running_sim(upstream.port, delay_ms=50) as sim:
        reader, writer = await clients.open(sim.listen_port("db"))
        for _ in range(3):
            rtt_s = await round_trip_s(reader, writer)
            assert 0.1 - 1e-3 <= rtt_s < 1.0
        sim.set_delay(150)  # applies to bytes read from now on
        rtt_s = await round_trip_s(reader, writer)
        assert 0.3 - 1e-3 <= rtt_s < 1.5
        assert sim.state()["delay_ms"] == 150


async def test_delay_does_not_serialize_chunks(upstream: Upstream, clients: Clients) -> None:
    n_messages, message = 200, b"m" * 100
    async with running_sim(upstream.port, delay_ms=50) as sim:
        reader, writer = await clients.open(sim.listen_port("db"))
        started = time.monotonic()
        for _ in range(n_messages):
            writer.write(message)
            await writer.drain()
            # Spaced out so the proxy reads them as separate chunks, not one coalesced read.
            await asyncio.sleep(0.002)
        echoed = await asyncio.wait_for(reader.readexactly(n_messages * len(message)), WAIT_S)
        elapsed_s = time.monotonic() - started
    assert echoed == message * n_messages
    # Serialized delivery would need n_messages * 100 ms = 20 s.
    assert 0.1 <= elapsed_s < 3.0


async def test_delay_does_not_limit_bulk_throughput(clients: Clients) -> None:
    payload = random.randbytes(8 * MiB)
    async with serving(sink) as upstream, running_sim(upstream.port, delay_ms=50) as sim:
        _, writer = await clients.open(sim.listen_port("db"))
        started = time.monotonic()
        writer.write(payload)
        writer.write_eof()
        await eventually(lambda: upstream.finished == 1, "payload delivered")
        elapsed_s = time.monotonic() - started
    assert upstream.received == payload
    # At least 128 reads of 64 KiB: one delay per chunk, serialized, would take >= 6.4 s.
    assert 0.05 <= elapsed_s < 3.0


# --- bandwidth ---------------------------------------------------------------------------------


def test_pipe_sends_chunks_one_after_another_at_the_bandwidth() -> None:
    pipe = _Pipe()
    assert pipe.send(1_000_000, now=5.0, bandwidth_mbit=None) == 5.0  # no limit: at once
    # 1 MB at 8 Mbit/s is one second; the next chunk waits for it, an idle pipe does not.
    assert pipe.send(1_000_000, now=10.0, bandwidth_mbit=8) == pytest.approx(11.0)
    assert pipe.send(500_000, now=10.2, bandwidth_mbit=8) == pytest.approx(11.5)
    assert pipe.send(500_000, now=20.0, bandwidth_mbit=8) == pytest.approx(20.5)


async def test_bandwidth_limit_spreads_a_bulk_transfer_over_its_size_over_the_rate(
    clients: Clients,
) -> None:
    payload = random.randbytes(2 * MiB)
    async with (
        serving(sink) as upstream,
        running_sim(upstream.port, delay_ms=0, bandwidth_mbit=16) as sim,
    ):
        assert sim.state()["bandwidth_mbit"] == 16
        _, writer = await clients.open(sim.listen_port("db"))
        started = time.monotonic()
        writer.write(payload)
        writer.write_eof()
        await eventually(lambda: upstream.finished == 1, "payload delivered")
        elapsed_s = time.monotonic() - started
        sim.set_bandwidth(None)
        assert sim.state()["bandwidth_mbit"] is None
    assert upstream.received == payload
    # 2 MiB at 16 Mbit/s takes 1.05 s at least, however fast the machine.
    assert elapsed_s >= 2 * MiB * 8 / 16e6 - 0.05
