"""create_app(settings) and its lifespan; nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.sessions import SessionMiddleware

from ccat_api.api import (
    auth,
    console,
    executed_obs_units,
    raw_data,
    reference_data,
    refusals,
    site,
    tokens,
    transactions,
    transfers,
    users,
)
from ccat_api.api import live as live_routes
from ccat_api.api.middleware import RequestContextMiddleware, UnderPrefix
from ccat_api.api.routing import every_route, refuse_other_methods_on_literal_paths
from ccat_api.buffering.durability import DurabilityCheck
from ccat_api.buffering.envelope import SCHEMA_VERSION
from ccat_api.config import Settings
from ccat_api.db.pruning import Pruner
from ccat_api.db.revisions import Relation, RevisionCheck, check_revision
from ccat_api.health import HealthProbe
from ccat_api.live import metrics as site_metrics
from ccat_api.live.services import LiveServices
from ccat_api.logs import configure_logging
from ccat_api.runtime import Runtime, build_worker
from ccat_api.supervisor import supervise

log = logging.getLogger(__name__)
HUB_READY_TIMEOUT_S = 5.0


async def _check_revision(runtime: Runtime) -> RevisionCheck | None:
    """The database's schema revision against the code's: the main site refuses to start on
    one it cannot write to; a secondary site starts and its processor holds the replay."""
    settings = runtime.settings
    try:
        async with runtime.read_db.connect() as conn:

            async def fetch_value(sql: str) -> object:
                return await conn.scalar(text(sql))

            check = await asyncio.wait_for(
                check_revision(fetch_value, SCHEMA_VERSION), settings.db_connect_timeout_s * 2
            )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        # A replica that is down at start is served around (reads answer 503 until it is
        # back); the processor checks main's revision itself before it replays anything.
        log.warning("could not read the database's schema revision: %s", exc)
        return None
    if check.servable:
        if check.relation is not Relation.SAME:
            log.warning("schema: %s", check.describe())
    elif settings.is_secondary:
        log.warning(
            "schema: %s; writes are buffered and the replay is held until it is resolved",
            check.describe(),
        )
    else:
        raise RuntimeError(f"refusing to start: {check.describe()}")
    return check


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything started is stopped, in reverse order, also when starting fails half way
        # (a Redis refused as not durable): each piece registers its stop as it starts.
        async with contextlib.AsyncExitStack() as started:
            site_metrics.forget_dead_workers()
            started.callback(site_metrics.forget_worker, os.getpid())
            runtime = Runtime.build(settings)
            started.push_async_callback(runtime.close)
            app.state.revision = await _check_revision(runtime)
            health = HealthProbe(runtime)
            started.push_async_callback(health.close)
            live = LiveServices.build(runtime, health)
            app.state.runtime = runtime
            app.state.health = health
            app.state.live = live
            stop = asyncio.Event()
            tasks: list[asyncio.Task[None]] = []

            async def stop_tasks() -> None:
                live.stopping.set()
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)

            started.push_async_callback(stop_tasks)
            tasks += live.start()
            if settings.is_secondary:
                assert runtime.buffer is not None
                assert runtime.redis is not None
                durability = DurabilityCheck(
                    runtime.redis, runtime.buffer, require=settings.require_durable_redis
                )
                try:
                    problem = await durability.run_once()
                except (RedisError, OSError, TimeoutError) as exc:
                    # Come up anyway: reads that need only the replica are served, writes get
                    # 503 until Redis answers and is found durable.
                    log.warning("Redis does not answer; writes are refused until it does: %s", exc)
                else:
                    # Redis answers and could lose writes: an operator's mistake, said at once.
                    if problem and settings.require_durable_redis:
                        raise RuntimeError(f"refusing to buffer writes in this Redis: {problem}")
                for name, loop in (
                    ("durability", durability.run_forever),
                    ("main_probe", health.probe_main_forever),
                ):
                    run = functools.partial(loop, stop)
                    tasks.append(
                        asyncio.create_task(supervise(name, run, stop, faults=health.faults))
                    )
                if settings.run_processor:
                    worker = build_worker(settings, runtime.redis)
                    health.watch(worker.faults)
                    started.enter_context(site_metrics.processor_in_this_process())
                    # worker.run supervises the processor and the tracker itself.
                    tasks.append(asyncio.create_task(worker.run(stop)))
            elif settings.prune_interval_s > 0:
                # Every worker of a main gateway runs it; the database lets one prune at a time.
                pruner = Pruner(runtime.main_db, settings)
                run_pruner = functools.partial(pruner.run_forever, stop)
                tasks.append(
                    asyncio.create_task(supervise("prune", run_pruner, stop, faults=health.faults))
                )
            tasks.append(
                asyncio.create_task(
                    runtime.authenticator.usage.flush_forever(
                        runtime.main_db, stop, settings.token_usage_flush_s
                    )
                )
            )
            if live.hub.enabled:
                # Monitors that connect once we serve must not miss an event published after.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.hub.ready.wait(), HUB_READY_TIMEOUT_S)
            _build_routes(app)
            # Everything built so far lives as long as the process: keep it out of the cyclic
            # collector's full passes, which otherwise stall requests now and then.
            gc.collect()
            gc.freeze()
            log.info(
                "gateway ready: site %s (%s)", settings.site_name, settings.site_type.value,
                extra={"event": "ready", "site": settings.site_name},
            )  # fmt: skip
            yield

    app = FastAPI(
        title="ccat_api",
        summary="Site-aware write-buffering gateway for the CCAT operations database",
        version="0.1.0",
        lifespan=lifespan,
    )
    # Only the OAuth login's state lives here: a signed cookie for the round trip to GitHub,
    # so only the login's two routes pay for parsing cookies.
    app.add_middleware(
        UnderPrefix,
        prefix="/auth/github/",
        middleware=SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie="ccat_login",
        max_age=600,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    # Outermost: the request id and latency cover everything below, sessions included.
    app.add_middleware(RequestContextMiddleware, access_log_enabled=settings.access_log)
    refusals.install(app)
    # A request is matched against each route in turn (FastAPI has no prefix index), and no
    # two areas' paths overlap: the critical writes come first, the 48 catalog routes after
    # everything the observatory calls often (matching took about a quarter of a write's CPU).
    for module in (
        executed_obs_units, raw_data, transfers, transactions, site, live_routes, auth, tokens,
        users, reference_data, console,
    ):  # fmt: skip
        app.include_router(module.router)
    refuse_other_methods_on_literal_paths(app)
    return app


def _build_routes(app: FastAPI) -> None:
    """FastAPI compiles the routes of included routers on the first request that reaches
    them (hundreds of validators: ~0.3 s here); do it before serving, so an instrument's
    first write after a restart is as fast as any other."""
    for _ in every_route(app.routes):
        pass


def app_from_environment() -> FastAPI:
    """uvicorn factory: settings from config/settings.toml, .env and CCAT_* variables."""
    from ccat_api.config import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
