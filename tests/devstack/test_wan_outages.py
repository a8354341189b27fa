"""The WAN simulator over real loopback sockets: outages hold bytes and connections, bounded;
cuts and stops drop connections."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from ccat_api.devstack.system import free_port
from ccat_api.devstack.wan import WanSimulator
from tests.devstack.wan_loopback import (
    WAIT_S,
    Clients,
    MiB,
    Upstream,
    assert_dropped,
    eventually,
    link_state,
    round_trip_s,
    running_sim,
    serving,
    sink,
)

pytestmark = pytest.mark.timeout(30)


# --- outage ------------------------------------------------------------------------------------


async def test_down_holds_bytes_and_up_delivers_them_in_order(
    upstream: Upstream, clients: Clients
) -> None:
    async with running_sim(upstream.port, delay_ms=30) as sim:
        reader, writer = await clients.open(sim.listen_port("db"))
        await round_trip_s(reader, writer, b"before")
        sim.set_down(True)
        for part in (b"one-", b"two-", b"three"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.3)
        assert bytes(upstream.received) == b"before"

        came_up = time.monotonic()
        sim.set_down(False)
        held = await asyncio.wait_for(reader.readexactly(len(b"one-two-three")), WAIT_S)
        assert held == b"one-two-three"
        # Held bytes behave like retransmissions: each direction still takes the delay.
        assert time.monotonic() - came_up >= 0.06 - 1e-3
        assert bytes(upstream.received) == b"beforeone-two-three"


async def test_new_connection_during_outage_reaches_upstream_only_when_up(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    wan.set_down(True)
    reader, writer = await clients.open(wan.listen_port("db"))
    writer.write(b"hello")
    await writer.drain()
    await asyncio.sleep(0.3)
    assert upstream.accepted == 0
    assert link_state(wan)["active"] == 1

    wan.set_down(False)
    assert await asyncio.wait_for(reader.readexactly(5), WAIT_S) == b"hello"
    assert upstream.accepted == 1


async def test_client_that_gives_up_during_outage_never_reaches_upstream(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    wan.set_down(True)
    _, writer = await clients.open(wan.listen_port("db"))
    writer.write(b"startup packet")
    writer.close()
    await eventually(lambda: link_state(wan)["active"] == 0, "abandoned connection dropped")
    wan.set_down(False)
    await asyncio.sleep(0.2)
    assert upstream.accepted == 0
    assert link_state(wan)["total"] == 1


async def test_bounded_buffering_pushes_back_on_the_sender(clients: Clients) -> None:
    block_bytes, max_blocks = MiB, 64
    base = random.randbytes(block_bytes)
    async with (
        serving(sink) as upstream,
        running_sim(upstream.port, max_in_flight_bytes=256 * 1024) as sim,
    ):
        _, writer = await clients.open(sim.listen_port("db"))
        sim.set_down(True)
        sent = bytearray()
        for index in range(max_blocks):
            block = index.to_bytes(8) + base[8:]
            writer.write(block)
            sent += block
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
        # An unbounded proxy would swallow everything; kernel buffers alone hold far less.
        assert len(sent) < max_blocks * block_bytes
        assert upstream.received == b""

        sim.set_down(False)
        await asyncio.wait_for(writer.drain(), WAIT_S)
        writer.write_eof()
        await eventually(lambda: len(upstream.received) == len(sent), "held bytes delivered")
        assert upstream.received == sent


# --- cut and stop ------------------------------------------------------------------------------


async def test_cut_resets_every_open_connection(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    readers = []
    for _ in range(3):
        reader, writer = await clients.open(wan.listen_port("db"))
        await round_trip_s(reader, writer)
        readers.append(reader)
    assert wan.cut() == 3
    for reader in readers:
        await assert_dropped(reader)
    await eventually(lambda: upstream.finished == 3, "upstream side closed too")
    assert link_state(wan)["active"] == 0
    assert wan.cut() == 0

    reader, writer = await clients.open(wan.listen_port("db"))
    assert await round_trip_s(reader, writer) < 1.0


async def test_stop_drops_connections_including_held_ones(
    upstream: Upstream, clients: Clients
) -> None:
    async with running_sim(upstream.port) as sim:
        port = sim.listen_port("db")
        established, writer = await clients.open(port)
        await round_trip_s(established, writer)
        sim.set_down(True)
        writer.write(b"held")
        pending, _ = await clients.open(port)
        await eventually(lambda: link_state(sim)["active"] == 2, "both connections tracked")
        await asyncio.wait_for(sim.stop(), WAIT_S)
        await assert_dropped(established)
        await assert_dropped(pending)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    assert upstream.received == b"ping"


async def test_upstream_refusing_resets_the_client(clients: Clients) -> None:
    async with running_sim(free_port()) as sim:
        reader, writer = await clients.open(sim.listen_port("db"))
        writer.write(b"anyone?")
        await assert_dropped(reader)
        await eventually(lambda: link_state(sim)["active"] == 0, "failed connection dropped")
