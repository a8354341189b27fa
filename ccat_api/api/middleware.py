"""Per-request bookkeeping, as plain ASGI middleware (no extra task per request): a request id
(the client's ``X-Request-ID`` or a new one, echoed back), the latency histogram by route
template, and one access-log line carrying the request id and the tx id of a write."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccat_api.logs import REQUEST_ID, TX_ID
from ccat_api.metrics import HTTP_REQUEST_DURATION

access_log = logging.getLogger("ccat_api.access")
MAX_REQUEST_ID_LENGTH = 100
# (method, route template, status) -> its histogram child: labels() takes a lock and
# builds its key on every call. Bounded by the route table times the statuses it answers.
_durations: dict[tuple[str, str, int], Any] = {}


def _duration_of(method: str, template: str, status: int) -> Any:
    key = (method, template, status)
    child = _durations.get(key)
    if child is None:
        child = _durations[key] = HTTP_REQUEST_DURATION.labels(method, template, str(status))
    return child


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if 0 < len(given) <= MAX_REQUEST_ID_LENGTH and given.isprintable():
                return given
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, access_log_enabled: bool) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)
        TX_ID.set(None)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_s = time.perf_counter() - started
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            _duration_of(scope["method"], template, status).observe(elapsed_s)
            if self.access_log_enabled:
                access_log.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed_s * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed_s * 1000, 2),
                    },
                )


class UnderPrefix:
    """Runs ``middleware`` only for HTTP requests whose path starts with ``prefix``; every
    other request skips it (a session middleware parses cookies on every request it sees)."""

    def __init__(self, app: ASGIApp, /, *, prefix: str, middleware: Any, **options: Any) -> None:
        self.app = app
        self.prefix = prefix
        self.wrapped: ASGIApp = middleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Behind a proxy's prefix (root_path) the path carries it too: uvicorn includes it.
        if scope["type"] == "http" and scope["path"].removeprefix(
            scope.get("root_path", "")
        ).startswith(self.prefix):
            await self.wrapped(scope, receive, send)
        else:
            await self.app(scope, receive, send)
