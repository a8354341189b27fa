"""What ``Client`` and ``AsyncClient`` share: their settings and the program each call takes.
The two add only the I/O: a request sent and a pause, blocking or awaited."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import httpx

from ccat_api.client.call import Call
from ccat_api.client.endpoints import Endpoints
from ccat_api.client.methods import Runner, procedure
from ccat_api.client.models import TransactionState
from ccat_api.client.options import http_options
from ccat_api.client.program import Program, one
from ccat_api.client.retry import OnRetry, RetryPolicy, log_retry
from ccat_api.client.visibility import SiteKind, Transaction, VisibilityWait, wait_for_visibility

T = TypeVar("T")
Http = TypeVar("Http", httpx.Client, httpx.AsyncClient)
Transport = TypeVar("Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)


class ClientCore(Endpoints, Runner, Generic[Http, Transport]):
    """A gateway client for one site."""

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
        transport: Transport | None = None,
    ) -> None:
        options = http_options(base_url, token, timeout_s, connect_timeout_s, headers)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.http: Http = self._open_http(transport, options)
        self._site = SiteKind()

    @abc.abstractmethod
    def _open_http(self, transport: Transport | None, options: dict[str, Any]) -> Http: ...

    def _program(self, call: Call[T]) -> Program[T]:
        return one(call)

    @procedure
    def wait_visible(
        self, tx: Transaction, *, timeout_s: float = 60.0, poll_interval_s: float = 0.25
    ) -> Program[TransactionState]:
        """Poll the transaction until it shows in this site's reads (see visibility.py);
        raises ``TransactionFailed`` or ``VisibilityTimeout``."""
        wait = VisibilityWait(tx, timeout_s=timeout_s, poll_interval_s=poll_interval_s)
        return wait_for_visibility(wait, self._site)
