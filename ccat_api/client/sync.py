"""The synchronous client: the shared programs, each step blocking on an ``httpx.Client``."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from ccat_api.client.call import Call, Exchange
from ccat_api.client.core import ClientCore
from ccat_api.client.delivery import SpoolSender
from ccat_api.client.methods import SyncRunner
from ccat_api.client.program import Outcome, Pause, Program, Step, Stepper
from ccat_api.client.retry import RetryableResponse, retrying

T = TypeVar("T")

log = logging.getLogger("ccat_api.client")


class Client(ClientCore[httpx.Client, httpx.BaseTransport], SyncRunner):
    """A gateway client for one site. Thread-safe (httpx.Client is); close it when done.

    >>> with Client("http://gateway:8000", token) as ccat:
    ...     unit = ccat.start_executed_obs_unit({"obs_unit_id": 1})
    ...     ccat.wait_visible(unit.tx_id)
    """

    _sender_thread: threading.Thread | None = None

    def _open_http(
        self, transport: httpx.BaseTransport | None, options: dict[str, Any]
    ) -> httpx.Client:
        return httpx.Client(transport=transport, **options)

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
        thread = self._sender_thread
        if thread is not None:
            self._closing.set()
            # A send under way gets its timeout to finish; after that the thread, a daemon,
            # is left to fail on the closed client, and the write stays spooled.
            thread.join(timeout=self.http.timeout.read or 10.0)
        self.http.close()
        if self.spool is not None and (thread is None or not thread.is_alive()):
            self.spool.close()

    def _send_in_background(self, sender: SpoolSender) -> None:
        self._closing = threading.Event()
        self._sender_thread = threading.Thread(
            target=self._keep_sending, args=(sender,), name="ccat-spool-sender", daemon=True
        )
        self._sender_thread.start()

    def _keep_sending(self, sender: SpoolSender) -> None:
        while not self._closing.wait(sender.next_check_s()):
            try:
                self._run(sender.flush(when_due=True))
            except Exception:
                log.exception("sending the spool failed; trying again later")

    def _run(self, program: Program[T]) -> T:
        run = Stepper(program)
        try:
            run.advance(Outcome())
            while not run.finished:
                run.advance(self._perform(run.step))
        finally:
            run.close()
        return run.result()

    def _perform(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return Outcome()
        try:
            return Outcome(self._send(step))
        except Exception as exc:
            return Outcome(error=exc)

    def _send(self, call: Call[T]) -> T:
        exchange = Exchange(call)
        try:
            for attempt in retrying(self.retry, call, self.on_retry):
                with attempt:
                    method, path, options = exchange.request()
                    exchange.check(self.http.request(method, path, **options))
        except (RetryableResponse, httpx.TransportError) as last:
            raise exchange.failure(last) from last
        return exchange.result()
