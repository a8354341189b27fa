"""The asyncio client: the same programs as ``Client``, each step awaited on an
``httpx.AsyncClient``. The spool's fsync runs on the event loop (a few ms per write)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from ccat_api.client.call import Call, Exchange
from ccat_api.client.core import ClientCore
from ccat_api.client.delivery import SpoolSender
from ccat_api.client.methods import AsyncRunner
from ccat_api.client.program import Outcome, Pause, Program, Step, Stepper
from ccat_api.client.retry import RetryableResponse, async_retrying

T = TypeVar("T")

log = logging.getLogger("ccat_api.client")


class AsyncClient(ClientCore[httpx.AsyncClient, httpx.AsyncBaseTransport], AsyncRunner):
    """A gateway client for one site, for asyncio code; ``async with`` or ``await aclose()``.

    >>> async with AsyncClient("http://gateway:8000", token) as ccat:
    ...     unit = await ccat.start_executed_obs_unit({"obs_unit_id": 1})
    ...     await ccat.wait_visible(unit.tx_id)
    """

    _background: SpoolSender | None = None
    _sender_task: asyncio.Task[None] | None = None

    def _open_http(
        self, transport: httpx.AsyncBaseTransport | None, options: dict[str, Any]
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **options)

    async def __aenter__(self) -> Self:
        self._start_sending()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._background = self._sender_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.aclose()
        if self.spool is not None:
            self.spool.close()

    def _send_in_background(self, sender: SpoolSender) -> None:
        # A task needs a running loop, which the constructor may not have: it starts with
        # the first use of the client inside one.
        self._background = sender

    def _start_sending(self) -> None:
        if self._background is not None and self._sender_task is None:
            self._sender_task = asyncio.create_task(
                self._keep_sending(self._background), name="ccat-spool-sender"
            )

    async def _keep_sending(self, sender: SpoolSender) -> None:
        while True:
            await asyncio.sleep(sender.next_check_s())
            try:
                await self._run(sender.flush(when_due=True))
            except Exception:
                log.exception("sending the spool failed; trying again later")

    async def _run(self, program: Program[T]) -> T:
        self._start_sending()
        run = Stepper(program)
        try:
            run.advance(Outcome())
            while not run.finished:
                run.advance(await self._perform(run.step))
        finally:
            run.close()
        return run.result()

    async def _perform(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return Outcome()
        try:
            return Outcome(await self._send(step))
        except Exception as exc:
            return Outcome(error=exc)

    async def _send(self, call: Call[T]) -> T:
        exchange = Exchange(call)
        try:
            async for attempt in async_retrying(self.retry, call, self.on_retry):
                with attempt:
                    method, path, options = exchange.request()
                    exchange.check(await self.http.request(method, path, **options))
        except (RetryableResponse, httpx.TransportError) as last:
            raise exchange.failure(last) from last
        return exchange.result()
