"""The load generator: open-loop (fixed arrival rate) and closed-loop (fixed concurrency) HTTP
load from the benchmark process, with latency percentiles.

Open loop: request ``i`` is *scheduled* at ``t0 + i / rate`` on a fixed grid and launched at
that moment whether or not earlier requests have finished; its latency is measured from the
scheduled start, so time spent queueing anywhere (a late client, a busy connection, the
server's accept queue) counts. That keeps the figures free of coordinated omission: a stall
shows up as high latency for every request scheduled during it, not as a few slow ones.

Closed loop: ``concurrency`` workers each send their next request as soon as the previous one
answered, for a fixed time; completed requests per second is the most the server sustains.

The client. On a small machine the load generator competes with the server for CPU, so it
must be cheap. httpx's AsyncClient costs about 3 ms of CPU per request here (8 ms with 32
requests in flight, where its connection pool's bookkeeping grows), which caps it near
120-300 requests/s and would make the floor look no faster than the gateway. The default
client (``RawClient``) is therefore a minimal HTTP/1.1 keep-alive client on asyncio streams
(about 0.1 ms per request): each request is one pre-built byte string (headers and body
serialized once per endpoint when the body does not vary), and only the status line,
``content-length`` and the body are parsed. ``client="httpx"`` selects httpx for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import httpx

Body = bytes | Callable[[int], bytes]
DEFAULT_TIMEOUT_S = 30.0


class ClientError(Exception):
    """The request got no HTTP answer (connection refused or dropped, timeout, bad framing)."""


class HttpResponse(NamedTuple):
    status: int
    body: bytes


class Client(Protocol):
    async def request(self, method: str, path: str, body: bytes) -> HttpResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """One endpoint to load: ``body`` is fixed bytes, or a function of the request number."""

    base_url: str
    path: str
    token: str | None = None
    body: Body = b"{}"
    method: str = "POST"

    def body_for(self, i: int) -> bytes:
        return self.body if isinstance(self.body, bytes) else self.body(i)


# --- clients --------------------------------------------------------------------------------


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class RawClient:
    """HTTP/1.1 with keep-alive over asyncio streams; at most ``pool`` connections at once
    (a request waits for one when all are busy, and that wait counts in its latency)."""

    def __init__(
        self,
        base_url: str,
        *,
        pool: int,
        headers: dict[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"RawClient speaks plain http only, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        fixed = {"host": f"{self._host}:{self._port}", **(headers or {})}
        self._fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(pool)
        self._timeout_s = timeout_s
        self._prebuilt: dict[tuple[str, str, bytes], bytes] = {}

    def _request_bytes(self, method: str, path: str, body: bytes) -> bytes:
        key = (method, path, body)
        cached = self._prebuilt.get(key)
        if cached is not None:
            return cached
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed_headers
        if body or method not in ("GET", "HEAD"):
            head += b"content-length: %d\r\n" % len(body)
        raw = head + b"\r\n" + body
        if len(self._prebuilt) < 64:  # fixed bodies repeat; varying ones are built per call
            self._prebuilt[key] = raw
        return raw

    async def request(self, method: str, path: str, body: bytes = b"") -> HttpResponse:
        raw = self._request_bytes(method, path, body)
        async with self._slots:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.usable():
                    conn = candidate
                    break
                candidate.close()
            try:
                async with asyncio.timeout(self._timeout_s):
                    if conn is None:
                        reader, writer = await asyncio.open_connection(self._host, self._port)
                        conn = _Connection(reader, writer)
                    conn.writer.write(raw)
                    status, content, keep = await _read_response(conn.reader)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn.close()
                raise ClientError(f"{type(exc).__name__}: {exc}") from exc
            if keep:
                self._idle.append(conn)
            else:
                conn.close()
            return HttpResponse(status, content)

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ValueError(f"not an HTTP/1.1 response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    keep = b"\r\nconnection: close\r\n" not in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        return status, await reader.readexactly(int(lower[at + 17 : end])), keep
    if b"\r\ntransfer-encoding: chunked\r\n" in lower:
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")  # no trailers from our servers
        return status, b"".join(chunks), keep
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep
    return status, await reader.read(), False  # delimited by the connection closing


class HttpxClient:
    """httpx's AsyncClient behind the same interface (for comparison; costs far more CPU)."""

    def __init__(
        self,
        base_url: str,
        *,
        pool: int,
        headers: dict[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            timeout=timeout_s,
        )

    async def request(self, method: str, path: str, body: bytes = b"") -> HttpResponse:
        try:
            response = await self._client.request(method, path, content=body or None)
        except httpx.HTTPError as exc:
            raise ClientError(f"{type(exc).__name__}: {exc}") from exc
        return HttpResponse(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_client(
    base_url: str, *, token: str | None = None, pool: int = 64, kind: str = "raw"
) -> Client:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if kind == "httpx":
        return HttpxClient(base_url, pool=pool, headers=headers)
    if kind == "raw":
        return RawClient(base_url, pool=pool, headers=headers)
    raise ValueError(f"unknown client {kind!r}: raw or httpx")


# --- results --------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -int(-pct * len(ordered) // 100)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    mode: str  # "open" or "closed"
    target_rate_per_s: float | None
    concurrency: int | None
    planned_duration_s: float
    elapsed_s: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    # Open loop only: the most the client launched a request behind its schedule (its own lag;
    # already part of that request's latency).
    max_launch_lag_ms: float = 0.0
    client_cpu_s: float = 0.0  # CPU the whole benchmark process used during the run

    @property
    def achieved_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "target_rate_per_s": self.target_rate_per_s,
            "concurrency": self.concurrency,
            "planned_duration_s": self.planned_duration_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "error_samples": self.error_samples[:5],
            "achieved_per_s": round(self.achieved_per_s, 1),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p90_ms": round(self.percentile_ms(90), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
            "max_launch_lag_ms": round(self.max_launch_lag_ms, 2),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_s / max(1, self.sent), 3),
        }


class _Recorder:
    def __init__(self, result: LoadResult, keep_bodies: bool) -> None:
        self.result = result
        self.keep_bodies = keep_bodies
        self.last_done = 0.0

    async def send(self, client: Client, target: Target, i: int, started: float) -> None:
        result = self.result
        result.sent += 1
        try:
            response = await client.request(target.method, target.path, target.body_for(i))
        except ClientError as exc:
            self._error(str(exc))
            return
        done = time.perf_counter()
        self.last_done = max(self.last_done, done)
        if response.status >= 300:
            self._error(f"HTTP {response.status}: {response.body[:200]!r}")
            return
        result.ok += 1
        result.latencies_ms.append((done - started) * 1000)
        if self.keep_bodies:
            result.bodies.append(response.body)

    def _error(self, what: str) -> None:
        self.last_done = max(self.last_done, time.perf_counter())
        self.result.errors += 1
        if len(self.result.error_samples) < 20:
            self.result.error_samples.append(what)


def _cpu_s() -> float:
    return time.process_time()


async def open_loop(
    target: Target,
    *,
    rate_per_s: float,
    duration_s: float,
    pool: int = 256,
    keep_bodies: bool = False,
    client_kind: str = "raw",
    until: asyncio.Event | None = None,
) -> LoadResult:
    """Fixed arrival rate on a fixed grid; latency counted from each scheduled start. With
    ``until``, no request is started once it is set (``duration_s`` is then the most)."""
    result = LoadResult("open", rate_per_s, None, duration_s)
    recorder = _Recorder(result, keep_bodies)
    count = int(rate_per_s * duration_s)
    interval_s = 1.0 / rate_per_s
    tasks: set[asyncio.Task[None]] = set()
    client = make_client(target.base_url, token=target.token, pool=pool, kind=client_kind)
    cpu0 = _cpu_s()
    try:
        t0 = time.perf_counter() + 0.05
        for i in range(count):
            if until is not None and until.is_set():
                break
            scheduled = t0 + i * interval_s
            wait_s = scheduled - time.perf_counter()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            else:
                result.max_launch_lag_ms = max(result.max_launch_lag_ms, -wait_s * 1000)
            task = asyncio.create_task(recorder.send(client, target, i, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    finally:
        await client.aclose()
    result.client_cpu_s = _cpu_s() - cpu0
    stopped = until is not None and until.is_set()
    result.elapsed_s = (
        recorder.last_done - t0 if stopped else max(recorder.last_done - t0, duration_s)
    )
    return result


async def closed_loop(
    target: Target,
    *,
    concurrency: int,
    duration_s: float,
    keep_bodies: bool = False,
    client_kind: str = "raw",
) -> LoadResult:
    """``concurrency`` clients back to back for ``duration_s``; throughput is completions/s."""
    result = LoadResult("closed", None, concurrency, duration_s)
    recorder = _Recorder(result, keep_bodies)
    counter = iter(range(1 << 62))
    client = make_client(target.base_url, token=target.token, pool=concurrency, kind=client_kind)
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    deadline = t0 + duration_s

    async def worker() -> None:
        while (now := time.perf_counter()) < deadline:
            await recorder.send(client, target, next(counter), now)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.aclose()
    result.client_cpu_s = _cpu_s() - cpu0
    result.elapsed_s = max(recorder.last_done, deadline) - t0
    return result
