"""create_app(settings) and its lifespan; nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Match

from ccat_api.api import (
    auth,
    catalog,
    console,
    executed_obs_units,
    raw_data,
    site,
    tokens,
    transactions,
    transfers,
    users,
)
from ccat_api.api import live as live_routes
from ccat_api.api.deps import ReplayedAnswer
from ccat_api.api.middleware import RequestContextMiddleware, UnderPrefix
from ccat_api.api.routing import printable
from ccat_api.config import Settings
from ccat_api.db.failures import refused_value, unreachable
from ccat_api.errors import CcatError, ServiceUnavailable, Unprocessable
from ccat_api.health import HealthProbe
from ccat_api.live import metrics as site_metrics
from ccat_api.live.services import LiveServices
from ccat_api.logs import configure_logging
from ccat_api.runtime import Runtime, build_worker

log = logging.getLogger(__name__)
HUB_READY_TIMEOUT_S = 5.0


def _field_of(loc: tuple[str | int, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        # A key is the client's text: it may hold what an answer cannot encode.
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return printable(name) or "body"


async def _ccat_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CcatError)
    headers = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        reason = errors[0].get("ctx", {}).get("error", "not JSON")
        position = errors[0]["loc"][-1]
        return _not_json(f"body: not valid JSON ({reason} at byte {position})")
    problems = [{"field": _field_of(tuple(e["loc"])), "message": e["msg"]} for e in errors]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        {
            "detail": f"{first['field']}: {first['message']}",
            "field": first["field"],
            "code": "validation_error",
            "errors": problems,
        },
        status_code=422,
    )


def _not_json(detail: str) -> JSONResponse:
    """One answer for a body that cannot be read as JSON, whichever layer noticed (FastAPI's
    parser for bad syntax, Starlette's for bytes that are not UTF-8): the 422 every route
    with a body documents, as it always was for bad syntax."""
    error = Unprocessable(detail, field="body")
    return JSONResponse(error.to_dict() | {"code": "invalid_json"}, error.status_code)


# Starlette and FastAPI raise these themselves (no route, wrong method, unreadable body).
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
_UNPARSEABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals, in the one error shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.detail == _UNPARSEABLE_BODY:
        return _not_json("body: could not be read as JSON (not UTF-8, or nested too deeply)")
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    elif exc.status_code == 405:
        allowed = _methods_of(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"detail": detail, "field": None, "code": code}, exc.status_code, headers=headers
    )


def _methods_of(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own Allow header names only
    the first route whose path matched, and a path here often has one route per method."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "OPTIONS"}  # matches no route fully: partials only
    for route in request.app.routes:
        # Included routers hold one context per route (see _build_routes).
        contexts = getattr(route, "effective_route_contexts", None)
        for candidate in contexts() if contexts is not None else [route]:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                methods |= set(getattr(candidate, "methods", None) or ())
    return sorted(methods)


async def _replayed_answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReplayedAnswer)
    return JSONResponse(exc.answer.body, status_code=exc.answer.status_code)


async def _backend_unavailable(_: Request, exc: Exception) -> JSONResponse:
    which = "the site's buffer (Redis)" if isinstance(exc, RedisError) else "a database it needs"
    log.warning("%s unavailable: %s", which, exc)
    error = ServiceUnavailable(f"this request cannot be served now: {which} is unavailable")
    return await _ccat_error(_, error)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Bad input that got past validation is still the client's problem, not an outage: a
    503 would have it retry the same request forever. Everything else that is not a lost
    connection is a bug and stays a 500."""
    assert isinstance(exc, DBAPIError)
    refused = refused_value(exc)
    if refused is not None:
        log.warning("database refused a value: %s", refused)
        error = Unprocessable(f"a value in this request is out of range or malformed: {refused}")
        return await _ccat_error(request, error)
    if unreachable(exc):
        return await _backend_unavailable(request, exc)
    raise exc


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
                await runtime.buffer.warm_up()
                problem = await runtime.buffer.check_durable()
                if problem and settings.require_durable_redis:
                    raise RuntimeError(f"refusing to buffer writes in this Redis: {problem}")
                if problem:
                    log.warning("Redis is not durable: %s", problem)
                tasks.append(asyncio.create_task(health.probe_main_forever(stop)))
                if settings.run_processor:
                    worker = build_worker(settings, runtime.redis)
                    started.enter_context(site_metrics.processor_in_this_process())
                    tasks.append(asyncio.create_task(worker.run(stop)))
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
    app.add_exception_handler(CcatError, _ccat_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ReplayedAnswer, _replayed_answer)
    for backend_error in (RedisError, OSError):
        app.add_exception_handler(backend_error, _backend_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    # A request is matched against each route in turn (FastAPI has no prefix index), and no
    # two areas' paths overlap: the critical writes come first, the 48 catalog routes after
    # everything the observatory calls often (matching took about a quarter of a write's CPU).
    for module in (
        executed_obs_units, raw_data, transfers, transactions, site, live_routes, auth, tokens,
        users, catalog, console,
    ):  # fmt: skip
        app.include_router(module.router)
    return app


def _build_routes(app: FastAPI) -> None:
    """FastAPI compiles the routes of included routers on the first request that reaches
    them (hundreds of validators: ~0.3 s here); do it before serving, so an instrument's
    first write after a restart is as fast as any other."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for _ in contexts():
                pass


def app_from_environment() -> FastAPI:
    """uvicorn factory: settings from config/settings.toml, .env and CCAT_* variables."""
    from ccat_api.config import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
