"""Helpers shared by the integration tests: a gateway served in-process over real HTTP,
bounded waits, and direct looks at main and the replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import httpx
import uvicorn

from ccat_api.app import create_app
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack, StackConfig
from ccat_api.devstack.system import free_port
from ccat_api.live.frames import SERVER_OPTIONS
from ccat_api.runtime import build_worker, site_redis

T = TypeVar("T")


@contextlib.asynccontextmanager
async def serve(settings: Settings, port: int | None = None) -> AsyncIterator[str]:
    """The real app behind a real uvicorn server on a free loopback port, given the path
    prefix and the WebSocket protocol as ``ccat-api serve`` gives them."""
    async with serve_asgi(
        create_app(settings), port, root_path=settings.root_path, **SERVER_OPTIONS
    ) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, port: int | None = None, root_path: str = "", **options: Any
) -> AsyncIterator[str]:
    """Any ASGI app (the gateway, a stand-in for GitHub) over real HTTP; ``options`` are
    uvicorn's (the gateway's: those ``ccat-api serve`` uses for WebSockets)."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        root_path=root_path,
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("gateway exited during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("gateway did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout_s: float = 20.0, interval_s: float = 0.05
) -> T:
    """Poll until ``probe`` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    rows = await fetch(dsn, sql, *args)
    return rows[0][0] if rows else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(base_url: str, token: str | None = None, timeout_s: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers=bearer(token) if token else {}, timeout=timeout_s
    )


async def buffer_state(redis_url: str, site: str) -> dict[str, int]:
    """How much a site holds in Redis: stream entries, overlay records, dead letters."""
    from ccat_api.buffering.keys import SiteKeys
    from ccat_api.runtime import make_redis

    keys = SiteKeys(site)
    redis = make_redis(redis_url)
    try:
        overlay = 0
        async for key in redis.scan_iter(match=keys.overlay("*")):
            overlay += int(await redis.hlen(key))
        return {
            "stream": int(await redis.xlen(keys.stream)),
            "overlay": overlay,
            "dead": int(await redis.zcard(keys.dead)),
            "awaiting_replica": int(await redis.zcard(keys.applied)),
            "idempotency": len(
                [k async for k in redis.scan_iter(match=keys.idempotency("*", "*"))]
            ),
        }
    finally:
        await redis.aclose()


@contextlib.contextmanager
def refused_on_main(stack: Any, table: str, check: str) -> Iterator[None]:
    """Main refuses new rows of ``table`` failing ``check`` (a NOT VALID constraint): a
    permanent replay failure on demand, lifted again afterwards."""
    name = f"t_refuse_{uuid.uuid4().hex[:8]}"
    stack.main_db.psql(
        f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID", user="ccat"
    )
    try:
        yield
    finally:
        stack.main_db.psql(f"ALTER TABLE {table} DROP CONSTRAINT {name}", user="ccat")


# The fields of a raw data file every test may leave alone.
RAW_FILE = {"checksum": "sha256:0011223344556677", "file_type": "fits", "instrument_module_id": 1}


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of an answer that must have ``status`` (the body is the failure message)."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


@contextlib.contextmanager
def replica_paused(stack: Stack) -> Iterator[None]:
    """The local replica stops replaying (it still receives): main moves on, the site lags."""
    stack.replica.psql("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        stack.replica.psql("SELECT pg_wal_replay_resume()")


async def apply_backlog(worker: SiteWorker) -> None:
    """Replay everything the site has buffered onto main (the WAN must be up)."""
    while (await worker.processor.backlog())[0]:
        await worker.processor.run_once()


async def settle(stack: Stack, worker: SiteWorker) -> None:
    """Everything buffered applied on main, replayed by the replica and marked visible."""
    await apply_backlog(worker)
    stack.wait_replica_caught_up()
    await worker.tracker.run_once()


async def all_pages(
    http: httpx.AsyncClient, path: str, params: dict[str, Any], limit: int
) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of a list read page by page, and every total the pages reported."""
    items: list[dict[str, Any]] = []
    totals: set[int] = set()
    offset = 0
    while True:
        page = ok(await http.get(path, params={**params, "limit": limit, "offset": offset}))
        assert (page["limit"], page["offset"]) == (limit, offset), page
        totals.add(page["total"])
        items += page["items"]
        offset += limit
        if offset >= page["total"]:
            return items, totals


def _comparable(column: str, value: Any) -> Any:
    if isinstance(value, str) and column.endswith(("_at", "_time")):
        return datetime.fromisoformat(value)
    return value


def in_list_order(items: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """``items`` as every list orders them, worked out independently of the server: by the
    ``order`` column (``-`` for descending, NULLs last either way, text by code point), then
    by id ascending."""
    column, descending = order.lstrip("-"), order.startswith("-")
    by_id = sorted(items, key=lambda i: i["id"])
    present = [i for i in by_id if i[column] is not None]
    absent = [i for i in by_id if i[column] is None]
    # A stable sort keeps the id order among equal values, in either direction.
    ordered = sorted(present, key=lambda i: _comparable(column, i[column]), reverse=descending)
    return ordered + absent


async def complete_package(
    http: httpx.AsyncClient,
    name: str,
    *,
    obs_unit_id: int = 1,
    sizes: tuple[int, ...] = (1000,) * 3,
) -> tuple[str, str]:
    """A new executed obs unit with one finalized package of new files: (unit id, package id)."""
    eou = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": obs_unit_id}), 201)
    package = ok(
        await http.post(
            "/raw_data_package",
            json={
                "name": name,
                "executed_obs_unit_id": eou["id"],
                "instrument_module_id": 1,
                "files": [
                    {**RAW_FILE, "name": f"f{i}", "relative_path": f"{name}/f{i}.fits",
                     "size_bytes": size}
                    for i, size in enumerate(sizes)
                ],
            },
        ),
        201,
    )  # fmt: skip
    ok(await http.put(f"/raw_data_package/{package['id']}/finalize", json={"checksum": "md5:f00d"}))
    return eou["id"], package["id"]


async def start_transfer(http: httpx.AsyncClient, package: str, route_id: int = 1) -> str:
    """A new transfer of ``package`` along ``route_id``: its id."""
    body = {"raw_data_package_id": package, "route_id": route_id}
    return str(ok(await http.post("/api/transfer/transfers", json=body), 201)["id"])


async def start_eou(http: httpx.AsyncClient, obs_unit_id: int = 1, **extra: Any) -> dict[str, Any]:
    """A new executed obs unit: the write's answer (``id``, ``tx_id``, ``status``)."""
    body = {"obs_unit_id": obs_unit_id, **extra}
    return dict(ok(await http.post("/executed_obs_units/start", json=body), 201))


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    """A stack for tests: no gateways or processor of its own (tests serve and drive them),
    no WAN delay; removed afterwards."""
    stack = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=0))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@contextlib.asynccontextmanager
async def site_worker(settings: Settings) -> AsyncIterator[SiteWorker]:
    """The site's processor and tracker, driven by the test with ``run_once()``."""
    redis = site_redis(settings)
    built = build_worker(settings, redis)
    try:
        yield built
    finally:
        await built.processor.close()
        await built.tracker.close()
        await redis.aclose()


@contextlib.asynccontextmanager
async def processing(worker: SiteWorker) -> AsyncIterator[None]:
    """The site's processor and tracker running as in service (holds, retries and all)."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def service_token(stack: Stack, login: str, role: str, *, main_url: str | None = None) -> str:
    """A token of a new service account on the stack's main, once the replicas have it
    (for tests with a stack of their own; the session stack has ``tokens``)."""
    from ccat_api.auth.tokens import issue_service_token
    from ccat_api.db.engines import PrimaryDatabase, make_engine

    async def create() -> str:
        db = PrimaryDatabase(
            make_engine(
                main_url or stack.main_db.url(),
                pool_size=1,
                connect_timeout_s=5,
                application_name="tests",
            )
        )
        try:
            return (await issue_service_token(db, login, role)).plaintext
        finally:
            await db.dispose()

    token = asyncio.run(create())
    for site in stack.sites:
        stack.wait_replica_caught_up(site=site)
    return token
