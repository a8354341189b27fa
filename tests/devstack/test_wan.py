"""The WAN simulator over real loopback sockets: exact bytes, delay, outages, cuts, control, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccat_api.devstack.system import free_port
from ccat_api.devstack.wan import (
    AsyncWanControl,
    ControlServer,
    LinkSpec,
    WanControl,
    WanSimulator,
    _Pipe,
    main,
    parse_hostport,
)

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
WAIT_S = 10.0

Behaviour = Callable[["Upstream", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A loopback server standing in for PostgreSQL; records what reached it."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self.accepted = 0
        self.finished = 0
        self.received = bytearray()
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=WAIT_S)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._behaviour(self, reader, writer)
        except Exception as exc:  # the proxy resets us on cut(); tests inspect errors
            self.errors.append(exc)
        finally:
            self.finished += 1
            writer.close()


async def echo(up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(64 * 1024):
        up.received += data
        writer.write(data)
        await writer.drain()
    writer.write_eof()


async def sink(up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(64 * 1024):
        up.received += data


def source_and_sink(payload: bytes) -> Behaviour:
    """Send ``payload`` then EOF while reading to EOF: both directions busy, independently."""

    async def behaviour(
        up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(send())
            tg.create_task(sink(up, reader, writer))

    return behaviour


@contextlib.asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[Upstream]:
    upstream = Upstream(behaviour)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@contextlib.asynccontextmanager
async def running_sim(
    upstream_port: int, delay_ms: int = 0, **kwargs: Any
) -> AsyncIterator[WanSimulator]:
    sim = WanSimulator(
        [LinkSpec("db", "127.0.0.1", 0, "127.0.0.1", upstream_port)], delay_ms, **kwargs
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Clients:
    """Client connections that are always torn down, whatever the test did to them."""

    def __init__(self) -> None:
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT_S)
        self._writers.append(writer)
        return reader, writer

    async def close_all(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await asyncio.wait_for(writer.wait_closed(), WAIT_S)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving(echo) as up:
        yield up


@pytest.fixture
async def wan(upstream: Upstream) -> AsyncIterator[WanSimulator]:
    async with running_sim(upstream.port) as sim:
        yield sim


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    try:
        yield opened
    finally:
        await opened.close_all()


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


async def round_trip_s(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes = b"ping"
) -> float:
    started = time.monotonic()
    writer.write(message)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(message)), WAIT_S) == message
    return time.monotonic() - started


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), WAIT_S)


async def assert_dropped(reader: asyncio.StreamReader) -> None:
    """A cut connection ends with EOF or a reset, never with more data or a hang."""
    try:
        data = await asyncio.wait_for(reader.read(1024), WAIT_S)
    except ConnectionResetError:
        return
    assert data == b""


def link_state(sim: WanSimulator) -> dict[str, Any]:
    links: list[dict[str, Any]] = sim.state()["links"]
    return links[0]


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


# --- control API -------------------------------------------------------------------------------


async def test_control_api_over_http(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    server = ControlServer(wan)
    await server.start()
    try:
        async with (
            AsyncWanControl(server.base_url) as ctl,
            httpx.AsyncClient(base_url=server.base_url, trust_env=False) as raw,
        ):
            await ctl.wait_ready(WAIT_S)
            state = await ctl.state()
            assert state["delay_ms"] == 0
            assert state["down"] is False
            (link,) = state["links"]
            assert link["name"] == "db"
            assert link["listen"] == f"127.0.0.1:{wan.listen_port('db')}"
            assert link["upstream"] == f"127.0.0.1:{upstream.port}"
            assert (link["active"], link["total"], link["bytes_up"], link["bytes_down"]) == (
                0,
                0,
                0,
                0,
            )

            assert state["bandwidth_mbit"] is None
            await ctl.set_bandwidth(20)
            assert wan.bandwidth_mbit == 20
            await ctl.set_bandwidth(None)
            assert wan.bandwidth_mbit is None

            await ctl.set_delay(120)
            await ctl.down()
            assert wan.delay_ms == 120
            assert wan.down is True
            await ctl.up()
            assert (await ctl.state())["down"] is False
            put = await raw.put("/state", json={"delay_ms": 0, "down": True})
            assert put.status_code == 200
            assert put.json()["delay_ms"] == 0
            assert put.json()["down"] is True
            await ctl.up()

            bad_bodies: list[tuple[Any, str]] = [
                ({"delay_ms": -1}, "delay_ms"),
                ({"delay_ms": 1.5}, "delay_ms"),
                ({"delay_ms": True}, "delay_ms"),
                ({"down": "yes"}, "down"),
                ({"delay_ms": 7, "down": 1}, "down"),
                ({"latency": 3}, "latency"),
                ({"bandwidth_mbit": -1}, "bandwidth_mbit"),
                ({"bandwidth_mbit": "fast"}, "bandwidth_mbit"),
                ([1, 2], "body"),
            ]
            for body, field_name in bad_bodies:
                response = await raw.put("/state", json=body)
                assert response.status_code == 422, body
                assert field_name in response.json()["detail"]
            not_json = await raw.put("/state", content=b"{nope")
            assert not_json.status_code == 422
            assert wan.delay_ms == 0  # the half-valid request changed nothing
            with pytest.raises(ValueError, match="delay_ms"):
                await ctl.set_delay(-5)

            reader, writer = await clients.open(wan.listen_port("db"))
            await round_trip_s(reader, writer)
            assert await ctl.cut() == 1
            await assert_dropped(reader)
            cut = await raw.post("/cut")
            assert cut.json() == {"cut": 0}
            state = await ctl.state()
            assert state["links"][0]["total"] == 1
            assert state["links"][0]["bytes_up"] == len(b"ping")
            assert (await raw.get("/cut")).status_code == 405
    finally:
        await server.stop()


async def test_wait_ready_times_out_without_a_server() -> None:
    async with AsyncWanControl(f"http://127.0.0.1:{free_port()}") as ctl:
        with pytest.raises(TimeoutError):
            await ctl.wait_ready(0.3)


# --- CLI ---------------------------------------------------------------------------------------


def test_link_and_address_parsing() -> None:
    assert LinkSpec.parse("db=127.0.0.1:15432=10.0.0.5:5432") == LinkSpec(
        "db", "127.0.0.1", 15432, "10.0.0.5", 5432
    )
    assert parse_hostport("[::1]:80") == ("::1", 80)
    for bad in ("db=127.0.0.1:1", "db=127.0.0.1=x:2", "=a:1=b:2", "db=a:1=b:99999"):
        with pytest.raises(ValueError, match="expected"):
            LinkSpec.parse(bad)
    with pytest.raises(SystemExit) as exited:
        main(["--link", "nonsense", "--control", "127.0.0.1:1"])
    assert exited.value.code == 2


async def test_cli_forwards_and_exits_cleanly_on_sigterm(
    upstream: Upstream, clients: Clients
) -> None:
    listen_port, control_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccat_api.devstack.wan",
        "--link",
        f"db=127.0.0.1:{listen_port}=127.0.0.1:{upstream.port}",
        "--control",
        f"127.0.0.1:{control_port}",
        "--delay-ms",
        "25",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line == b"wan ready\n"
        reader, writer = await clients.open(listen_port)
        assert 0.05 - 1e-3 <= await round_trip_s(reader, writer) < 1.0

        # The blocking client runs in a thread: this loop also serves the upstream.
        with WanControl(f"http://127.0.0.1:{control_port}") as ctl:
            await asyncio.to_thread(ctl.wait_ready, WAIT_S)
            state = await asyncio.to_thread(ctl.state)
            assert state["delay_ms"] == 25
            assert state["links"][0]["active"] == 1
            await asyncio.to_thread(ctl.set_delay, 200)
            await asyncio.to_thread(ctl.down)
            await asyncio.to_thread(ctl.up)
            assert 0.4 - 1e-3 <= await round_trip_s(reader, writer) < 2.0
            assert await asyncio.to_thread(ctl.cut) == 1
        await assert_dropped(reader)

        proc.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
        assert proc.returncode == 0, stderr.decode()
        assert rest == b""
        assert b"Traceback" not in stderr, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


def test_control_state_is_json_serializable() -> None:
    sim = WanSimulator([LinkSpec("a", "127.0.0.1", 0, "127.0.0.1", 1)], delay_ms=7)
    decoded = json.loads(json.dumps(sim.state()))
    assert decoded["delay_ms"] == 7
    assert decoded["links"][0]["listen"] == "127.0.0.1:0"
    with pytest.raises(ValueError, match="delay_ms"):
        sim.set_delay(-1)
    with pytest.raises(ValueError, match="unique"):
        WanSimulator([LinkSpec("a", "h", 1, "h", 2), LinkSpec("a", "h", 3, "h", 4)])
