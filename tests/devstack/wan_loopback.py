"""Both ends of a simulated WAN link over real loopback sockets: an upstream standing in for
PostgreSQL, client connections always torn down, and checks on what crossed the link (the
fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ccat_api.devstack.wan import LinkSpec, WanSimulator

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
