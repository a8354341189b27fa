"""The asyncio client: the same ``Endpoints`` as ``Client``, each a coroutine method, run on
an ``httpx.AsyncClient`` under the same retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Self, TypeVar

import httpx

from ccat_api.client.call import AsyncRunner, Call
from ccat_api.client.endpoints import Endpoints
from ccat_api.client.models import TransactionState
from ccat_api.client.options import http_options
from ccat_api.client.retry import (
    OnRetry,
    RetryableResponse,
    RetryPolicy,
    async_retrying,
    log_retry,
)
from ccat_api.client.visibility import Transaction, VisibilityWait

T = TypeVar("T")


class AsyncClient(AsyncRunner, Endpoints):
    """A gateway client for one site, for asyncio code; ``async with`` or ``await aclose()``.

    >>> async with AsyncClient("http://gateway:8000", token) as ccat:
    ...     unit = await ccat.start_executed_obs_unit({"obs_unit_id": 1})
    ...     await ccat.wait_visible(unit.tx_id)
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        on_retry: OnRetry = log_retry,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.http = httpx.AsyncClient(
            transport=transport,
            **http_options(base_url, token, timeout_s, connect_timeout_s, headers),
        )
        self._main_site: bool | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def wait_visible(
        self, tx: Transaction, *, timeout_s: float = 60.0, poll_interval_s: float = 0.25
    ) -> TransactionState:
        """Poll the transaction until it shows in this site's reads (see visibility.py);
        raises ``TransactionFailed`` or ``VisibilityTimeout``."""
        wait = VisibilityWait(tx, timeout_s=timeout_s, poll_interval_s=poll_interval_s)
        if wait.main_site_hint:
            self._main_site = True
        while True:
            state = await self.get_transaction(wait.tx_id)
            if wait.needs_site_type(state) and self._main_site is None:
                self._main_site = (await self.site_info()).site_type == "main"
            if wait.done(state, main_site=bool(self._main_site)):
                return state
            await asyncio.sleep(wait.pause_s(state))

    async def _execute(self, call: Call[T]) -> T:
        attempt = 0
        response: httpx.Response | None = None
        try:
            async for attempt_manager in async_retrying(
                self.retry,
                method=call.method,
                path=call.path,
                replay_safe=call.replay_safe,
                on_retry=self.on_retry,
            ):
                with attempt_manager:
                    attempt = attempt_manager.retry_state.attempt_number
                    response = await self.http.request(
                        call.method, call.path, **call.send_options()
                    )
                    call.check(response, attempt)
        except (RetryableResponse, httpx.TransportError) as last:
            raise call.failure(last, attempt) from last
        assert response is not None
        return call.parse(response, attempt)
