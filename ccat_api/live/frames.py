"""Monitor frames written straight to their sockets, encoded once for every monitor.

Sending a frame through ASGI costs a monitor's task a wake-up, Starlette's and uvicorn's
send, and the WebSocket framing, per monitor and per event: with 500 monitors that
serialized hundreds of sends on the event loop that also answers writes. Every site-wide
monitor gets the same bytes, so the hub frames an event once (``text_frame``: a final,
unmasked, uncompressed text frame, as a server sends it) and writes it to each socket.

The server offers this through an ASGI extension, ``ccat.frames``: ``FramingProtocol`` is
uvicorn's websockets-sansio protocol plus a ``FrameSink`` for a connection whose handshake
negotiated no extension (a compressed connection's frames are not the same bytes). ``ccat-api
serve`` runs it (``SERVER_OPTIONS``); under a server without it a monitor's frames take the
ordinary ASGI path. A frame is written whole, so it never interleaves with the frames the
protocol writes itself (pings, the close).
"""

from __future__ import annotations

import functools
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

EXTENSION = "ccat.frames"
# uvicorn options for the gateway: the framing protocol, and no permessage-deflate (monitor
# frames are ~150 bytes; compressing each for each monitor cost a third of the fan-out CPU
# and saved next to nothing, and a compressed connection cannot share frames).
SERVER_OPTIONS: dict[str, Any] = {
    "ws": "ccat_api.live.frames:FramingProtocol",
    "ws_per_message_deflate": False,
}


@functools.lru_cache(maxsize=32)
def text_frame(text: str) -> bytes:
    """``text`` as one WebSocket text frame from a server (FIN, opcode 1, no mask)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        head = b"\x81\x7f" + size.to_bytes(8, "big")
    return head + payload


class FrameSink:
    """Whole frames to one open connection's socket."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> int | None:
        """Write ``frame``; the bytes the socket has yet to take, or None (and nothing
        written) once the connection is closing."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.close_sent or protocol.disconnected or transport.is_closing():
            return None
        transport.write(frame)
        return transport.get_write_buffer_size()


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, offering a ``FrameSink`` in the scope."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None and not self.conn.extensions:
            scope["extensions"][EXTENSION] = FrameSink(self)
