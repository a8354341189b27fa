"""A reverse proxy for tests that serves a gateway under a path prefix, as nginx does with
``location /ccat/ { proxy_pass http://gateway/; }``: HTTP requests and WebSocket handshakes
under the prefix reach the gateway with the prefix stripped; anything else is answered 404
(or its WebSocket refused) and recorded in ``outside``, so a page that uses an absolute path
fails where a test can see it.

It is an ASGI app: serve it with ``tests.support.serve_asgi``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# Hop-by-hop headers (RFC 9110 7.6.1), and those the proxy sets again for what it sends.
DROPPED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "content-encoding",
})  # fmt: skip
# The WebSocket handshake's own headers: the client library writes them for the upstream.
HANDSHAKE_HEADERS = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-accept",
})  # fmt: skip
REFUSED_CLOSE = 1008  # policy violation: the handshake was refused upstream


class PrefixProxy:
    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.outside: list[str] = []
        self._http = httpx.AsyncClient(timeout=30.0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await self._http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            self.outside.append(path)
            await self._refuse(scope, receive, send)
            return
        target = path[len(self.prefix) :] or "/"
        query = scope.get("query_string", b"").decode()
        if query:
            target += "?" + query
        if scope["type"] == "http":
            await self._forward_http(scope, receive, send, target)
        else:
            await self._forward_websocket(scope, receive, send, target)

    @staticmethod
    def _headers(scope: dict[str, Any], dropped: frozenset[str]) -> list[tuple[str, str]]:
        return [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name.decode("latin-1").lower() not in dropped
        ]

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": REFUSED_CLOSE})
            return
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"outside the proxy's prefix"})

    async def _forward_http(
        self, scope: dict[str, Any], receive: Any, send: Any, target: str
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = await self._http.request(
            scope["method"],
            self.upstream + target,
            headers=self._headers(scope, DROPPED_HEADERS),
            content=body,
        )
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers.multi_items()
            if name.lower() not in DROPPED_HEADERS
        ]
        headers.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.content})

    async def _forward_websocket(
        self, scope: dict[str, Any], receive: Any, send: Any, target: str
    ) -> None:
        await receive()  # websocket.connect
        address = self.upstream.replace("http", "ws", 1) + target
        try:
            upstream = await connect(
                address,
                additional_headers=self._headers(scope, DROPPED_HEADERS | HANDSHAKE_HEADERS),
            )
        except (InvalidStatus, OSError):
            await send({"type": "websocket.close", "code": REFUSED_CLOSE})
            return
        await send({"type": "websocket.accept"})
        async with upstream:
            down = asyncio.create_task(self._downstream(upstream, send))
            up = asyncio.create_task(self._upstream(upstream, receive))
            await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in (down, up):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @staticmethod
    async def _downstream(upstream: ClientConnection, send: Any) -> None:
        """The gateway's frames to the browser, then its close (code and reason)."""
        try:
            async for frame in upstream:
                key = "text" if isinstance(frame, str) else "bytes"
                await send({"type": "websocket.send", key: frame})
        except ConnectionClosed:
            pass
        await send({"type": "websocket.close", "code": upstream.close_code or 1000,
                    "reason": upstream.close_reason or ""})  # fmt: skip

    @staticmethod
    async def _upstream(upstream: ClientConnection, receive: Any) -> None:
        """The browser's frames to the gateway, until the browser leaves."""
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(message.get("code", 1000))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])
