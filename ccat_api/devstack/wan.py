"""The WAN between the remote observatory site and the main PostgreSQL, simulated in user space.

Kernel netem is unavailable, so an asyncio TCP proxy sits on each link. Forwarding is byte-exact,
order-preserving and full-duplex. The shared one-way delay is pipelined (never one delay per chunk);
like a TCP window, at most ``max_in_flight_bytes`` per direction are buffered, and an outage holds
bytes rather than dropping them. An optional bandwidth limit (``bandwidth_mbit``, each way) makes
every link share one pipe per direction: a chunk enters it when the bytes before it have gone
through, so a bulk transfer takes its size over the bandwidth plus one delay. Steered over HTTP
(``WanControl``); the devstack runs it as ``python -m ccat_api.devstack.wan``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("ccat_api.devstack.wan")  # also under `python -m`

CHUNK_BYTES: Final = 64 * 1024
DEFAULT_MAX_IN_FLIGHT_BYTES: Final = 16 * 1024 * 1024
# SO_LINGER with a zero timeout makes close() send RST, which is what a dropped link looks like.
_LINGER_RST: Final = struct.pack("ii", 1, 0)
_STOP_GRACE_S: Final = 1.0


# --- addresses ------------------------------------------------------------------------------


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class LinkSpec:
    name: str
    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """``NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT``, the CLI's ``--link`` syntax."""
        parts = text.split("=")
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT, got {text!r}")
        listen_host, listen_port = parse_hostport(parts[1])
        upstream_host, upstream_port = parse_hostport(parts[2])
        return cls(parts[0], listen_host, listen_port, upstream_host, upstream_port)


# --- forwarding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chunk:
    data: bytes  # b"" stands for EOF, so it travels in order behind the data
    read_at: float  # time.monotonic()
    delay_s: float  # fixed at read time: a delay change only affects newly read bytes
    # When the chunk's last byte has gone through the bandwidth limit (read_at without one).
    sent_at: float = 0.0


class _Pipe:
    """One direction of the WAN's bandwidth, shared by every connection of every link: bytes
    go through it one after another, each chunk when the chunks read before it are through."""

    def __init__(self) -> None:
        self.free_at = float("-inf")

    def send(self, n_bytes: int, now: float, bandwidth_mbit: float | None) -> float:
        """When ``n_bytes`` read at ``now`` are through (``now`` without a limit)."""
        if not bandwidth_mbit:
            return now
        self.free_at = max(now, self.free_at) + n_bytes * 8 / (bandwidth_mbit * 1e6)
        return self.free_at


class _ChunkQueue:
    """FIFO between one reader and one writer, bounded in bytes so a stalled side pushes back."""

    def __init__(self, limit_bytes: int) -> None:
        self._items: deque[_Chunk] = deque()
        self._limit_bytes = limit_bytes
        self._bytes = 0
        self._not_empty = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self.eof_queued = asyncio.Event()

    async def put(self, chunk: _Chunk) -> None:
        # A single oversized chunk is still admitted into an empty queue, or it would wait forever.
        while self._bytes >= self._limit_bytes:
            self._has_room.clear()
            await self._has_room.wait()
        self._items.append(chunk)
        self._bytes += len(chunk.data)
        self._not_empty.set()
        if not chunk.data:
            self.eof_queued.set()

    async def get(self) -> _Chunk:
        """Next chunk; its bytes stay counted until ``release`` (they are still in flight)."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self._items.popleft()

    def release(self, n_bytes: int) -> None:
        self._bytes -= n_bytes
        if self._bytes < self._limit_bytes:
            self._has_room.set()


@dataclass
class _Counter:
    bytes: int = 0


@dataclass(eq=False)
class _Connection:
    link: _Link
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    def abort(self) -> None:
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)


@dataclass(eq=False)
class _Link:
    spec: LinkSpec
    server: asyncio.Server | None = None
    conns: set[_Connection] = field(default_factory=set)
    total: int = 0
    up: _Counter = field(default_factory=_Counter)  # client -> upstream
    down: _Counter = field(default_factory=_Counter)  # upstream -> client


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed underneath us
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_connection_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, OSError)


def _retrieve_outcome(task: asyncio.Task[None]) -> None:
    # _serve handles its own errors; this only keeps a bug from vanishing into a GC warning.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("wan connection task failed", exc_info=exc)


def _check_delay_ms(delay_ms: object) -> int:
    if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
        raise ValueError(f"delay_ms must be an integer >= 0, got {delay_ms!r}")
    return delay_ms


def _check_bandwidth_mbit(mbit: object) -> float | None:
    """None (or 0): no limit; otherwise megabits per second, each way."""
    if mbit is None or (not isinstance(mbit, bool) and mbit == 0):
        return None
    if not isinstance(mbit, int | float) or isinstance(mbit, bool) or not mbit > 0:
        raise ValueError(f"bandwidth_mbit must be a number > 0 (or null: no limit), got {mbit!r}")
    return float(mbit)


class WanSimulator:
    """Every link forwards to its upstream through one shared WAN state (delay, outage)."""

    def __init__(
        self,
        links: Sequence[LinkSpec],
        delay_ms: int = 0,
        *,
        max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT_BYTES,
        bandwidth_mbit: float | None = None,
    ) -> None:
        self._links = {spec.name: _Link(spec) for spec in links}
        if len(self._links) != len(links):
            raise ValueError("link names must be unique")
        self._delay_ms = _check_delay_ms(delay_ms)
        self._bandwidth_mbit = _check_bandwidth_mbit(bandwidth_mbit)
        # One pipe each way, shared by all links: they cross the same WAN.
        self._to_upstream = _Pipe()
        self._to_client = _Pipe()
        if max_in_flight_bytes <= 0:
            raise ValueError("max_in_flight_bytes must be positive")
        self._max_in_flight_bytes = max_in_flight_bytes
        self._down = False
        self._up = asyncio.Event()
        self._up.set()
        # Bytes read before the link last came up were held by an outage; like retransmitted
        # segments they arrive one delay after the link returns, not instantly.
        self._last_up_at = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = False

    # lifecycle

    async def start(self) -> None:
        self._accepting = True
        try:
            for link in self._links.values():
                link.server = await asyncio.start_server(
                    functools.partial(self._accept, link),
                    link.spec.listen_host,
                    link.spec.listen_port,
                    limit=CHUNK_BYTES,
                )
                log.info(
                    "wan link %s: %s -> %s",
                    link.spec.name,
                    self._listen_address(link),
                    _format_hostport(link.spec.upstream_host, link.spec.upstream_port),
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and drop every proxied connection; returns once all tasks are gone."""
        self._accepting = False
        for link in self._links.values():
            if link.server is not None:
                link.server.close()
        self.cut()
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_STOP_GRACE_S)
        for link in self._links.values():
            if link.server is not None:
                await link.server.wait_closed()
                link.server = None

    # WAN state

    @property
    def delay_ms(self) -> int:
        return self._delay_ms

    @property
    def down(self) -> bool:
        return self._down

    def set_delay(self, ms: int) -> None:
        self._delay_ms = _check_delay_ms(ms)

    @property
    def bandwidth_mbit(self) -> float | None:
        return self._bandwidth_mbit

    def set_bandwidth(self, mbit: float | None) -> None:
        """Megabits per second each way from now on; None: unlimited."""
        self._bandwidth_mbit = _check_bandwidth_mbit(mbit)

    def set_down(self, down: bool) -> None:
        if not isinstance(down, bool):
            raise TypeError(f"down must be a bool, got {down!r}")
        if down == self._down:
            return
        self._down = down
        if down:
            self._up.clear()
        else:
            self._last_up_at = time.monotonic()
            self._up.set()

    def cut(self) -> int:
        """Reset every open proxied connection on both sides; returns how many there were."""
        n_cut = 0
        for link in self._links.values():
            for conn in list(link.conns):
                link.conns.discard(conn)
                conn.abort()
                if conn.task is not None:
                    conn.task.cancel()
                n_cut += 1
        return n_cut

    def listen_port(self, name: str) -> int:
        """The bound port of a link (useful after asking for port 0)."""
        server = self._links[name].server
        if server is None or not server.sockets:
            raise RuntimeError(f"link {name!r} is not listening")
        return int(server.sockets[0].getsockname()[1])

    def state(self) -> dict[str, Any]:
        return {
            "delay_ms": self._delay_ms,
            "down": self._down,
            "bandwidth_mbit": self._bandwidth_mbit,
            "links": [
                {
                    "name": link.spec.name,
                    "listen": self._listen_address(link),
                    "upstream": _format_hostport(link.spec.upstream_host, link.spec.upstream_port),
                    "active": len(link.conns),
                    "total": link.total,
                    "bytes_up": link.up.bytes,
                    "bytes_down": link.down.bytes,
                }
                for link in self._links.values()
            ],
        }

    def _listen_address(self, link: _Link) -> str:
        port = link.spec.listen_port
        if link.server is not None and link.server.sockets:
            port = int(link.server.sockets[0].getsockname()[1])
        return _format_hostport(link.spec.listen_host, port)

    # per connection

    def _accept(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not self._accepting:
            _abort(writer)
            return
        conn = _Connection(link, writer)
        link.conns.add(conn)
        link.total += 1
        # Our own task rather than start_server's: stop() and cut() must be able to cancel and
        # await it.
        conn.task = asyncio.get_running_loop().create_task(
            self._serve(conn, reader), name=f"wan-{link.spec.name}"
        )
        self._tasks.add(conn.task)
        conn.task.add_done_callback(self._tasks.discard)
        conn.task.add_done_callback(_retrieve_outcome)

    async def _serve(self, conn: _Connection, client_reader: asyncio.StreamReader) -> None:
        spec = conn.link.spec
        to_upstream = _ChunkQueue(self._max_in_flight_bytes)
        to_client = _ChunkQueue(self._max_in_flight_bytes)
        clean = False
        try:
            async with asyncio.TaskGroup() as tg:
                # Reading starts at accept: the client believes it is connected and may talk.
                tg.create_task(self._pump_in(client_reader, to_upstream, self._to_upstream))
                if await self._wait_for_link(to_upstream):
                    upstream_reader, conn.upstream = await asyncio.open_connection(
                        spec.upstream_host, spec.upstream_port, limit=CHUNK_BYTES
                    )
                    tg.create_task(self._pump_out(to_upstream, conn.upstream, conn.link.up))
                    tg.create_task(self._pump_in(upstream_reader, to_client, self._to_client))
                    tg.create_task(self._pump_out(to_client, conn.client, conn.link.down))
            clean = True
        except Exception as exc:  # a broken connection must never escape its task
            if _is_connection_failure(exc):
                log.debug("wan link %s: connection failed: %r", spec.name, exc)
            else:
                log.exception("wan link %s: unexpected proxy error", spec.name)
        finally:
            conn.link.conns.discard(conn)
            if clean:
                conn.close()
            else:
                conn.abort()

    async def _wait_for_link(self, to_upstream: _ChunkQueue) -> bool:
        """Hold the upstream connect during an outage, as lost SYNs would; False if the client
        gave up (closed) before the link came back."""
        while self._down:
            if to_upstream.eof_queued.is_set():
                return False
            await _first_of(self._up, to_upstream.eof_queued)
        return True

    async def _pump_in(self, reader: asyncio.StreamReader, queue: _ChunkQueue, pipe: _Pipe) -> None:
        while True:
            data = await reader.read(CHUNK_BYTES)
            now = time.monotonic()
            sent_at = pipe.send(len(data), now, self._bandwidth_mbit)
            await queue.put(_Chunk(data, now, self._delay_ms / 1000, sent_at))
            if not data:
                return

    async def _pump_out(
        self, queue: _ChunkQueue, writer: asyncio.StreamWriter, counter: _Counter
    ) -> None:
        while True:
            chunk = await queue.get()
            await self._until_deliverable(chunk)
            if not chunk.data:
                # Half-close, so request/response protocols that shut down writing still work.
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk.data)
            counter.bytes += len(chunk.data)
            await writer.drain()
            queue.release(len(chunk.data))

    async def _until_deliverable(self, chunk: _Chunk) -> None:
        while True:
            if self._down:
                await self._up.wait()
                continue
            release_at = max(chunk.read_at, chunk.sent_at) + chunk.delay_s
            if chunk.read_at < self._last_up_at:
                release_at = max(release_at, self._last_up_at + chunk.delay_s)
            wait_s = release_at - time.monotonic()
            if wait_s <= 0:
                return
            # Re-checked after waking: the link may have gone down meanwhile.
            await asyncio.sleep(wait_s)


# --- HTTP control ---------------------------------------------------------------------------


class _BadInput(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name


@dataclass(frozen=True)
class _StateUpdate:
    delay_ms: int | None
    down: bool | None
    set_bandwidth: bool  # bandwidth_mbit was given (null lifts the limit)
    bandwidth_mbit: float | None


def _parse_state_update(body: object) -> _StateUpdate:
    """Validate everything before applying anything, so a bad request changes nothing."""
    if not isinstance(body, dict):
        raise _BadInput("body", "must be a JSON object")
    for key in body:
        if key not in ("delay_ms", "down", "bandwidth_mbit"):
            raise _BadInput(
                str(key), "unknown field; expected delay_ms, down and/or bandwidth_mbit"
            )
    delay_ms = body.get("delay_ms")
    if "delay_ms" in body:
        try:
            _check_delay_ms(delay_ms)
        except ValueError:
            raise _BadInput("delay_ms", "must be an integer >= 0") from None
    down = body.get("down")
    if "down" in body and not isinstance(down, bool):
        raise _BadInput("down", "must be true or false")
    try:
        bandwidth_mbit = _check_bandwidth_mbit(body.get("bandwidth_mbit"))
    except ValueError:
        raise _BadInput("bandwidth_mbit", "must be a number > 0, or null for no limit") from None
    return _StateUpdate(delay_ms, down, "bandwidth_mbit" in body, bandwidth_mbit)


def create_control_app(sim: WanSimulator) -> Starlette:
    async def state_endpoint(request: Request) -> JSONResponse:
        if request.method == "PUT":
            try:
                update = _parse_state_update(await request.json())
            except json.JSONDecodeError:
                return _unprocessable(_BadInput("body", "must be valid JSON"))
            except _BadInput as exc:
                return _unprocessable(exc)
            if update.delay_ms is not None:
                sim.set_delay(update.delay_ms)
            if update.down is not None:
                sim.set_down(update.down)
            if update.set_bandwidth:
                sim.set_bandwidth(update.bandwidth_mbit)
        return JSONResponse(sim.state())

    async def cut_endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"cut": sim.cut()})

    return Starlette(
        routes=[
            Route("/state", state_endpoint, methods=["GET", "PUT"]),
            Route("/cut", cut_endpoint, methods=["POST"]),
        ]
    )


def _unprocessable(exc: _BadInput) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "field": exc.field_name}, status_code=422)


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn that leaves signals alone: the host process owns the loop and its shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ControlServer:
    """Serves ``create_control_app(sim)`` with uvicorn inside the caller's event loop."""

    def __init__(self, sim: WanSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = create_control_app(sim)
        self._host = host
        self._port = port
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{_format_hostport(self._host, self._port)}"

    async def start(self, timeout_s: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # Binding here, not in uvicorn, is what makes port 0 usable: we learn the real port.
        sock = socket.create_server((self._host, self._port), family=family)
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="wan-control")
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._task.done() or time.monotonic() > deadline:
                sock.close()
                await self.stop()  # re-raises what uvicorn died of, if it did
                raise RuntimeError(f"wan control server did not start on {self.base_url}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        task, self._task, self._server = self._task, None, None
        await task


# --- HTTP clients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: dict[str, int | float | bool | None] | None = None


_GET_STATE: Final = _Call("GET", "/state")
_CUT: Final = _Call("POST", "/cut")
_READY_POLL_S: Final = 0.05


def _client_options(base_url: str, timeout_s: float) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "timeout": timeout_s,
        # Loopback control traffic must not be routed through an HTTP(S)_PROXY from the env.
        "trust_env": False,
        # No idle sockets are kept, so a client nobody closes leaks nothing.
        "limits": httpx.Limits(max_keepalive_connections=0),
    }


def _decode(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 422:
        raise ValueError(response.json().get("detail", response.text))
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise TypeError(f"unexpected control response: {body!r}")
    return body


class WanControl:
    """Blocking client for the control API (for test code outside the simulator's loop)."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self._client = httpx.Client(**_client_options(base_url, timeout_s))

    def _send(self, call: _Call) -> dict[str, Any]:
        return _decode(self._client.request(call.method, call.path, json=call.body))

    def state(self) -> dict[str, Any]:
        return self._send(_GET_STATE)

    def set_delay(self, ms: int) -> None:
        self._send(_Call("PUT", "/state", {"delay_ms": ms}))

    def set_bandwidth(self, mbit: float | None) -> None:
        """Megabits per second each way; None lifts the limit."""
        self._send(_Call("PUT", "/state", {"bandwidth_mbit": mbit}))

    def down(self) -> None:
        self._send(_Call("PUT", "/state", {"down": True}))

    def up(self) -> None:
        self._send(_Call("PUT", "/state", {"down": False}))

    def cut(self) -> int:
        return int(self._send(_CUT)["cut"])

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.state()
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"wan control not ready after {timeout_s} s") from exc
                time.sleep(_READY_POLL_S)
            else:
                return

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WanControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncWanControl:
    """``WanControl`` for async callers."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self._client = httpx.AsyncClient(**_client_options(base_url, timeout_s))

    async def _send(self, call: _Call) -> dict[str, Any]:
        return _decode(await self._client.request(call.method, call.path, json=call.body))

    async def state(self) -> dict[str, Any]:
        return await self._send(_GET_STATE)

    async def set_delay(self, ms: int) -> None:
        await self._send(_Call("PUT", "/state", {"delay_ms": ms}))

    async def set_bandwidth(self, mbit: float | None) -> None:
        await self._send(_Call("PUT", "/state", {"bandwidth_mbit": mbit}))

    async def down(self) -> None:
        await self._send(_Call("PUT", "/state", {"down": True}))

    async def up(self) -> None:
        await self._send(_Call("PUT", "/state", {"down": False}))

    async def cut(self) -> int:
        return int((await self._send(_CUT))["cut"])

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.state()
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"wan control not ready after {timeout_s} s") from exc
                await asyncio.sleep(_READY_POLL_S)
            else:
                return

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncWanControl:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --- CLI ------------------------------------------------------------------------------------


async def run(
    links: Sequence[LinkSpec],
    control: tuple[str, int],
    delay_ms: int = 0,
    bandwidth_mbit: float | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then close listeners and connections."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGTERM, signal.SIGINT)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    sim = WanSimulator(links, delay_ms, bandwidth_mbit=bandwidth_mbit)
    control_server = ControlServer(sim, *control)
    try:
        await sim.start()
        await control_server.start()
        log.info("wan control on %s", control_server.base_url)
        print("wan ready", flush=True)
        await stop.wait()
        log.info("wan shutting down")
    finally:
        await control_server.stop()
        await sim.stop()
        for sig in handled:
            loop.remove_signal_handler(sig)


_T = TypeVar("_T")


def _arg(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """argparse only reports ArgumentTypeError messages; keep ours."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ccat_api.devstack.wan", description="Simulated WAN (TCP proxy)."
    )
    parser.add_argument(
        "--link",
        action="append",
        required=True,
        type=_arg(LinkSpec.parse),
        metavar="NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT",
        help="a proxied link; repeat for several",
    )
    parser.add_argument("--control", required=True, type=_arg(parse_hostport), metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=_arg(lambda s: _check_delay_ms(int(s))), default=0)
    parser.add_argument(
        "--bandwidth-mbit",
        type=_arg(lambda s: _check_bandwidth_mbit(float(s))),
        default=None,
        help="bandwidth each way in megabits per second (default: unlimited)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        asyncio.run(run(args.link, args.control, args.delay_ms, args.bandwidth_mbit))
    except OSError as exc:
        log.error("wan failed to start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
