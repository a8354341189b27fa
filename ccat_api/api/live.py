"""Live monitoring over WebSockets, the site status, tickets and Prometheus metrics.

Streams (every frame is a JSON object with a ``type``):
- ``/api/ws/transactions[?tx_id=]``: ``hello``, then for one tx_id a ``snapshot`` of its
  state, then ``event`` frames (``buffered``, ``applied`` with LSN, ``visible``, ``failed``,
  ``discarded``) as they happen, or ``events`` frames (a list, when several are ready at
  once; for a large replayed batch the site-wide stream gets ``summarized`` counts by state
  instead of every row, failures always listed).
- ``/api/ws/buffer``: ``hello``, a ``snapshot`` of the site status, then an ``update`` every
  ``live_status_interval_s``: depth, oldest pending age, rates, estimated drain, replica lag.
- ``/api/transfer/ws/overview``: ``hello``, a ``snapshot`` of the transfer overview, then an
  ``update`` whenever it changes.
A ``resync`` frame means events may have been missed: read the state again over REST. An
``unavailable`` frame (buffer and overview streams) means the figures cannot be computed now
(Redis or a database is down); an ``update`` follows once they can.

Authentication: ``Authorization: Bearer`` on the handshake (scripts, instruments), or
``?ticket=`` from ``POST /api/ws/tickets`` (browsers; single use, 30 s). A connection lives
``ws_max_lifetime_s`` give or take 10% (so monitors that connected together do not all
reconnect together), and never past the expiry of the credential it opened with (a
session's access token); the ``hello`` frame says how long. Close codes: 4401
unauthenticated, 4403 forbidden, 4422 bad parameter (stop: reconnecting cannot help); 4000
lifetime reached, 1013 slow consumer dropped or a service the gateway needs (Redis for
tickets, the replica for tokens) is down, 1001 gateway stopping (1012 when uvicorn closes
first) (reconnect, with backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from ccat_api.api import examples
from ccat_api.api.deps import Authenticated, BufferReadAccess, runtime_of
from ccat_api.api.responses import documented
from ccat_api.api.routing import CheckedRoute
from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.permissions import Permission
from ccat_api.errors import BadRequest, CcatError, Forbidden, ServiceUnavailable, Unauthorized
from ccat_api.live import metrics as site_metrics
from ccat_api.live.feeds import Feed
from ccat_api.live.frames import EXTENSION as FRAMES_EXTENSION
from ccat_api.live.hub import Subscription
from ccat_api.live.models import SiteStatus
from ccat_api.live.services import (
    BUFFER_STREAM,
    OVERVIEW_STREAM,
    TRANSACTIONS_STREAM,
    LiveServices,
)
from ccat_api.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_DROPPED
from ccat_api.waits import cancel_and_wait

log = logging.getLogger(__name__)
router = APIRouter(route_class=CheckedRoute, tags=["live"])

CLOSE_LIFETIME = 4000
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_PARAMETER = 4422
CLOSE_SLOW_CONSUMER = 1013
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_TIMEOUT_S = 5.0
LIFETIME_JITTER = 0.1


class TicketRead(BaseModel):
    ticket: str
    expires_in: int


def live_of(app_state: object) -> LiveServices:
    live: LiveServices = app_state.live  # type: ignore[attr-defined]
    return live


@router.post(
    "/api/ws/tickets",
    response_model=TicketRead,
    responses=documented(examples.TICKET, 401, 503),
    summary="A single-use ticket (30 s) to open a WebSocket monitor from a browser",
)
async def create_ticket(request: Request, identity: Authenticated) -> TicketRead:
    tickets = live_of(request.app.state).tickets
    return TicketRead(ticket=tickets.issue(identity), expires_in=tickets.ttl_s)


@router.get(
    "/api/site/status",
    response_model=SiteStatus,
    responses=documented(examples.SITE_STATUS, 401, 403, 503),
    summary="The site at a glance: buffer, rates, drain estimate, replica lag, processor",
)
async def site_status(request: Request, _: BufferReadAccess) -> SiteStatus:
    return await live_of(request.app.state).sampler.current()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses=documented(examples.METRICS, 401, 403, 503, media_type="text/plain"),
    summary="Prometheus metrics (scrape with a token that has read:buffer)",
)
async def metrics(request: Request, _: BufferReadAccess) -> Response:
    status = await live_of(request.app.state).sampler.current()
    body, content_type = site_metrics.render(status)
    return Response(body, media_type=content_type)


# --- WebSockets -------------------------------------------------------------------------------


@router.websocket("/api/ws/transactions")
async def transactions_ws(websocket: WebSocket) -> None:
    live = live_of(websocket.app.state)
    tx_id = websocket.query_params.get("tx_id")

    def check_parameters() -> None:
        nonlocal tx_id
        if tx_id is not None:
            try:
                tx_id = str(uuid.UUID(tx_id))
            except ValueError:
                raise BadRequest("tx_id: not a UUID", field="tx_id") from None

    async def first_frames() -> list[str]:
        if tx_id is None:
            return []
        ledger = runtime_of(websocket).ledger
        status = await ledger.get(tx_id) if ledger is not None else None
        state = status.state if status is not None else "unknown"
        return [
            orjson.dumps(
                {"type": "snapshot", "stream": TRANSACTIONS_STREAM, "tx_id": tx_id,
                 "state": state, "lsn": status.lsn if status else None,
                 "error": status.error if status else None}
            ).decode()
        ]  # fmt: skip

    await _monitor(
        websocket,
        TRANSACTIONS_STREAM,
        Permission.READ_BUFFER,
        subscribe=lambda: live.hub.subscribe(TRANSACTIONS_STREAM, tx_id),
        unsubscribe=live.hub.unsubscribe,
        first_frames=first_frames,
        check_parameters=check_parameters,
    )


@router.websocket("/api/ws/buffer")
async def buffer_ws(websocket: WebSocket) -> None:
    feed = live_of(websocket.app.state).buffer_feed
    await _monitor_feed(websocket, feed, BUFFER_STREAM, Permission.READ_BUFFER)


@router.websocket("/api/transfer/ws/overview")
async def transfer_overview_ws(websocket: WebSocket) -> None:
    feed = live_of(websocket.app.state).overview_feed
    await _monitor_feed(websocket, feed, OVERVIEW_STREAM, Permission.READ_OBSERVATIONS)


async def _monitor_feed(
    websocket: WebSocket, feed: Feed, stream: str, permission: Permission
) -> None:
    """A monitor of one feed: its current snapshot first, then each frame it sends."""

    async def first_frames() -> list[str]:
        return [await feed.snapshot_frame()]

    await _monitor(
        websocket, stream, permission,
        subscribe=feed.subscribe, unsubscribe=feed.unsubscribe, first_frames=first_frames,
    )  # fmt: skip


async def _monitor(
    websocket: WebSocket,
    stream: str,
    permission: Permission,
    *,
    subscribe: Callable[[], Subscription],
    unsubscribe: Callable[[Subscription], None],
    first_frames: Callable[[], Awaitable[list[str]]],
    check_parameters: Callable[[], None] = lambda: None,
) -> None:
    """Authenticate, check the parameters, subscribe, send the opening frames, then forward
    frames until the client leaves, falls too far behind, the lifetime ends, or the server
    stops. Parameters are looked at only once the caller is known and allowed."""
    runtime = runtime_of(websocket)
    live = live_of(websocket.app.state)
    await websocket.accept()
    try:
        identity = await _authenticate(websocket, live)
        if not identity.allows(permission):
            raise Forbidden(f"role {identity.role!r} may not watch this: it needs {permission}")
        check_parameters()
    except (RedisError, DBAPIError, OSError) as exc:
        # Redis (single-use tickets) or the replica (tokens) is down: the credential may be
        # fine, so not 4401, which tells clients to stop; 1013 tells them to come back.
        log.warning("monitor refused for now: %s", exc)
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "a service this gateway needs is down")
        return
    except CcatError as exc:
        if isinstance(exc, Forbidden):
            code = CLOSE_FORBIDDEN
        elif isinstance(exc, BadRequest):
            code = CLOSE_BAD_PARAMETER
        elif isinstance(exc, ServiceUnavailable):
            code = CLOSE_TRY_AGAIN_LATER
        else:
            code = CLOSE_UNAUTHORIZED
        await _close(websocket, code, exc.message)
        return
    now = time.time()
    expires_at = identity.expires_at
    if expires_at is None and identity.via is Via.SESSION:
        # A ticket from a worker that did not yet carry the expiry (rolling upgrade): the
        # token can be valid for at most its whole lifetime from now.
        expires_at = now + runtime.settings.access_token_ttl_s
    lifetime_s = connection_lifetime_s(
        runtime.settings.ws_max_lifetime_s, expires_at, now=now, spread=random.uniform(-1, 1)
    )
    if lifetime_s <= 0:
        # The ticket was issued just before its token expired and redeemed just after.
        await _close(websocket, CLOSE_UNAUTHORIZED, "session token expired; refresh it")
        return
    subscription = subscribe()
    WEBSOCKET_CONNECTIONS.labels(stream).inc()
    try:
        await websocket.send_text(
            orjson.dumps(
                {"type": "hello", "stream": stream, "site": runtime.settings.site_name,
                 "site_type": runtime.settings.site_type.value, "worker": os.getpid(),
                 "events": live.hub.enabled, "lifetime_s": lifetime_s,
                 "server_time": time.time()}
            ).decode()
        )  # fmt: skip
        for frame in await first_frames():
            await websocket.send_text(frame)
        subscription.sink = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION)
        closing = await _forward(websocket, subscription, lifetime_s, live.stopping)
        if closing is not None:
            if closing[0] == CLOSE_SLOW_CONSUMER:
                WEBSOCKET_DROPPED.labels(stream).inc()
            await _close(websocket, *closing)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        unsubscribe(subscription)
        WEBSOCKET_CONNECTIONS.labels(stream).dec()


def connection_lifetime_s(
    max_lifetime_s: float, expires_at: float | None, *, now: float, spread: float
) -> float:
    """How long a monitor connection may stay open: ``max_lifetime_s`` moved by ``spread``
    (-1..1) times LIFETIME_JITTER, and no later than ``expires_at``. The expiry is a hard
    cap, not jittered: a connection must not outlive its credential, and access tokens
    already expire at scattered times (each person logged in or refreshed at their own)."""
    lifetime_s = max_lifetime_s * (1 + LIFETIME_JITTER * max(-1.0, min(1.0, spread)))
    if expires_at is not None:
        lifetime_s = min(lifetime_s, expires_at - now)
    return lifetime_s


async def _forward(
    websocket: WebSocket, subscription: Subscription, lifetime_s: float, stopping: asyncio.Event
) -> tuple[int, str] | None:
    """Returns the close to send, or None when the client already closed."""

    async def send_loop() -> None:
        async for frame in subscription.frames():
            await websocket.send_text(frame)
        # The hub writes this monitor's frames itself from now on (Subscription.direct).
        await asyncio.get_running_loop().create_future()

    async def receive_until_closed() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    sender = asyncio.create_task(send_loop())
    receiver = asyncio.create_task(receive_until_closed())
    overflow = asyncio.create_task(subscription.overflowed.wait())
    stop = asyncio.create_task(stopping.wait())
    tasks = {sender, receiver, overflow, stop}
    try:
        done, _ = await asyncio.wait(tasks, timeout=lifetime_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            await cancel_and_wait(task, Exception)
    if receiver in done or sender in done:
        return None
    if overflow in done:
        return CLOSE_SLOW_CONSUMER, (
            f"slow consumer: more than {subscription.queue.maxsize} frames behind; reconnect"
        )
    if stop in done:
        return CLOSE_GOING_AWAY, "server shutting down"
    return CLOSE_LIFETIME, "connection lifetime reached; reconnect"


async def _authenticate(websocket: WebSocket, live: LiveServices) -> Identity:
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return await runtime_of(websocket).authenticator.identify(token.strip())
    ticket = websocket.query_params.get("ticket")
    if ticket:
        return await live.tickets.redeem(ticket)
    raise Unauthorized("send 'Authorization: Bearer <token>' or ?ticket= from POST /api/ws/tickets")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # Close reasons are limited to 123 bytes by the protocol.
    with contextlib.suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason.encode()[:123].decode(errors="ignore"))
