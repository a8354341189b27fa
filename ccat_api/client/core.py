"""What ``Client`` and ``AsyncClient`` share: their settings, the spool, and the program each
call takes. The two add only the I/O: a request sent and a pause, blocking or awaited."""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import httpx

from ccat_api.client.call import Call
from ccat_api.client.delivery import FlushReport, SpoolOptions, SpoolSender
from ccat_api.client.endpoints import Endpoints
from ccat_api.client.errors import SpoolError
from ccat_api.client.methods import Runner, procedure
from ccat_api.client.models import TransactionState
from ccat_api.client.options import http_options
from ccat_api.client.program import Program, one
from ccat_api.client.retry import OnRetry, RetryPolicy, log_retry
from ccat_api.client.spool_records import Destination, SpoolStatus
from ccat_api.client.visibility import SiteKind, Transaction, VisibilityWait, wait_for_visibility

T = TypeVar("T")
Http = TypeVar("Http", httpx.Client, httpx.AsyncClient)
Transport = TypeVar("Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)


class ClientCore(Endpoints, Runner, Generic[Http, Transport]):
    """A gateway client for one site. ``spool`` (a path, or ``SpoolOptions``) keeps every
    critical write on this machine's disk until the gateway has answered it: a write the
    gateway cannot take now raises ``WriteSpooled`` and is sent later, in order."""

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
        spool: SpoolOptions | str | os.PathLike[str] | None = None,
    ) -> None:
        options = http_options(base_url, token, timeout_s, connect_timeout_s, headers)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.spool: SpoolSender | None = None
        if spool is not None:
            spooling = spool if isinstance(spool, SpoolOptions) else SpoolOptions(spool)
            self.spool = SpoolSender(spooling, Destination.of(base_url, token))
        self.http: Http = self._open_http(transport, options)
        self._site = SiteKind()
        if self.spool is not None and self.spool.options.background:
            self._send_in_background(self.spool)

    @abc.abstractmethod
    def _open_http(self, transport: Transport | None, options: dict[str, Any]) -> Http: ...

    @abc.abstractmethod
    def _send_in_background(self, sender: SpoolSender) -> None:
        """Send the spool whenever it is due, while the client is open."""

    def _program(self, call: Call[T]) -> Program[T]:
        if self.spool is not None and call.idempotency_key is not None:
            return self.spool.write(call)
        return one(call)

    @procedure
    def wait_visible(
        self, tx: Transaction, *, timeout_s: float = 60.0, poll_interval_s: float = 0.25
    ) -> Program[TransactionState]:
        """Poll the transaction until it shows in this site's reads (see visibility.py);
        raises ``TransactionFailed`` or ``VisibilityTimeout``."""
        wait = VisibilityWait(tx, timeout_s=timeout_s, poll_interval_s=poll_interval_s)
        return wait_for_visibility(wait, self._site)

    @procedure
    def flush_spool(self) -> Program[FlushReport]:
        """Send every spooled write now, oldest first, and say what happened: how many were
        delivered, which the gateway refused for good, how many are left and why."""
        return self._spool().flush()

    def spool_status(self) -> SpoolStatus:
        """What the spool holds, read from its file (no request)."""
        return self._spool().spool.status()

    def _spool(self) -> SpoolSender:
        if self.spool is None:
            raise SpoolError("this client has no spool: pass spool=PATH when creating it")
        return self.spool
