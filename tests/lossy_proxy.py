"""A fault-injecting TCP proxy for tests: the answer to a request is lost on the way back.

For the first ``cut_first`` connections it forwards the client's bytes to the server, and
as soon as the server's first response bytes come back it drops them and resets the client
connection (SO_LINGER 0, so close() sends RST): the server has done the work, the client
never hears of it. Later connections are forwarded untouched, both ways.

With ``cut_after`` it cuts a chosen request's answer instead: every connection is forwarded
both ways until a request containing those bytes has gone through (say ``b"EVALSHA"``, a
script call, past a client's handshake); the reply to it is dropped and the client reset.
That happens for the first ``cut_first`` such requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

CHUNK_BYTES = 64 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)


class LossyProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        cut_first: int = 1,
        cut_after: bytes | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.cut_first = cut_first
        self.cut_after = cut_after
        self.connections = 0
        self.cuts = 0
        self._matched = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        lossy = self.cut_after is None and self.connections < self.cut_first
        self.connections += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
            cut_next_reply = asyncio.Event()
            requests = asyncio.create_task(
                self._watched_pipe(reader, upstream_writer, cut_next_reply)
                if self.cut_after is not None
                else _pipe(reader, upstream_writer)
            )
            try:
                if self.cut_after is not None:
                    await _pipe_until(upstream_reader, writer, cut_next_reply)
                    if cut_next_reply.is_set():
                        self.cuts += 1
                        _reset(writer)
                elif lossy:
                    if await upstream_reader.read(CHUNK_BYTES):
                        self.cuts += 1
                    _reset(writer)
                else:
                    await _pipe(upstream_reader, writer)
            finally:
                requests.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await requests
        except OSError:
            _reset(writer)
        finally:
            self._handlers.discard(task)
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    async def _watched_pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut_next_reply: asyncio.Event,
    ) -> None:
        """Forward requests; once one contains ``cut_after``, the next reply is to be cut."""
        assert self.cut_after is not None
        # A pattern split across two reads is found in the tail of one and the next read.
        keep = len(self.cut_after) - 1
        tail = b""
        try:
            while data := await reader.read(CHUNK_BYTES):
                seen = tail + data
                if self.cut_after in seen and self._matched < self.cut_first:
                    self._matched += 1
                    # Set before the request leaves, so its reply cannot come back first.
                    cut_next_reply.set()
                tail = seen[-keep:] if keep else b""
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def _pipe_until(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: asyncio.Event
) -> None:
    """Forward replies until one arrives while ``cut`` is set: that one is dropped."""
    try:
        while data := await reader.read(CHUNK_BYTES):
            if cut.is_set():
                return
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a dropped link or a crashed middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()
