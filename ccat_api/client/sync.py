"""The synchronous client: ``Endpoints`` run on an ``httpx.Client`` under the retry policy."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self, TypeVar

import httpx

from ccat_api.client.call import Call, SyncRunner
from ccat_api.client.endpoints import Endpoints
from ccat_api.client.models import TransactionState
from ccat_api.client.options import http_options
from ccat_api.client.retry import OnRetry, RetryableResponse, RetryPolicy, log_retry, retrying
from ccat_api.client.visibility import Transaction, VisibilityWait

T = TypeVar("T")


class Client(SyncRunner, Endpoints):
    """A gateway client for one site. Thread-safe (httpx.Client is); close it when done.

    >>> with Client("http://gateway:8000", token) as ccat:
    ...     unit = ccat.start_executed_obs_unit({"obs_unit_id": 1})
    ...     ccat.wait_visible(unit.tx_id)
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.http = httpx.Client(
            transport=transport,
            **http_options(base_url, token, timeout_s, connect_timeout_s, headers),
        )
        self._main_site: bool | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def wait_visible(
        self, tx: Transaction, *, timeout_s: float = 60.0, poll_interval_s: float = 0.25
    ) -> TransactionState:
        """Poll the transaction until it shows in this site's reads (see visibility.py);
        raises ``TransactionFailed`` or ``VisibilityTimeout``."""
        wait = VisibilityWait(tx, timeout_s=timeout_s, poll_interval_s=poll_interval_s)
        if wait.main_site_hint:
            self._main_site = True
        while True:
            state = self.get_transaction(wait.tx_id)
            if wait.needs_site_type(state) and self._main_site is None:
                self._main_site = self.site_info().site_type == "main"
            if wait.done(state, main_site=bool(self._main_site)):
                return state
            time.sleep(wait.pause_s(state))

    def _execute(self, call: Call[T]) -> T:
        attempt = 0
        response: httpx.Response | None = None
        try:
            for attempt_manager in retrying(
                self.retry,
                method=call.method,
                path=call.path,
                replay_safe=call.replay_safe,
                on_retry=self.on_retry,
            ):
                with attempt_manager:
                    attempt = attempt_manager.retry_state.attempt_number
                    response = self.http.request(call.method, call.path, **call.send_options())
                    call.check(response, attempt)
        except (RetryableResponse, httpx.TransportError) as last:
            raise call.failure(last, attempt) from last
        assert response is not None
        return call.parse(response, attempt)
