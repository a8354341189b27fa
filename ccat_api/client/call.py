"""One request described once, whichever client sends it.

A ``Call`` says what to send (method, path, body, query, Idempotency-Key, whether it may be
re-sent) and how to read the answer. A write's key is drawn when its call is built, so every
retry of one logical write, and every resend from the spool, carries the same key.
``Exchange`` is the bookkeeping of one call's attempts under the retry policy: both clients
loop over the attempts; everything else about them is here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

from ccat_api.client.errors import ApiError, ClientError, ConnectionFailed
from ccat_api.client.models import WriteResult
from ccat_api.client.retry import RETRY_STATUSES, RetryableResponse, describe

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Id = UUID | str

Parse = Callable[[httpx.Response, int], T]
"""Reads a successful answer; gets the response and the number of attempts it took."""


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Parse[T]
    json: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    replay_safe: bool = True
    """Safe to send again after it may have reached the server (reads, keyed writes)."""
    answers: frozenset[int] = frozenset()
    """Statuses besides 2xx that are answers, not errors (health's 503)."""
    max_attempts: int | None = None
    """Fewer sends than the retry policy allows (one, to learn whether a gateway is back)."""
    stamp: str | None = None
    """The body field the gateway fills with "now" when it is left out. A spooled write may
    be sent hours after it was made, so the spool fills it with the time it was made."""

    def send_options(self) -> dict[str, Any]:
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}
        options: dict[str, Any] = {"headers": headers}
        if self.json is not None:
            options["json"] = self.json
        if self.params:
            options["params"] = {k: v for k, v in self.params.items() if v is not None}
        return options


class Exchange(Generic[T]):
    """One call's attempts: counts them, sorts each answer into done, retry or refused, and
    turns the last failure into the SDK's error when the retries run out."""

    def __init__(self, call: Call[T]) -> None:
        self.call = call
        self.attempts = 0
        self.response: httpx.Response | None = None

    def request(self) -> tuple[str, str, dict[str, Any]]:
        """What to send for the next attempt: ``http.request(method, path, **options)``."""
        self.attempts += 1
        return self.call.method, self.call.path, self.call.send_options()

    def check(self, response: httpx.Response) -> None:
        """Inside the retry loop: a retryable status raises ``RetryableResponse``, any other
        error status an ``ApiError``, which the loop does not retry."""
        call = self.call
        if response.is_success or response.status_code in call.answers:
            self.response = response
            return
        if response.status_code in RETRY_STATUSES:
            raise RetryableResponse(response)
        raise ApiError.from_response(
            response, attempts=self.attempts, idempotency_key=call.idempotency_key
        )

    def result(self) -> T:
        assert self.response is not None, "check() saw no answer"
        return self.call.parse(self.response, self.attempts)

    def failure(self, last: RetryableResponse | httpx.TransportError) -> ClientError:
        """What to raise when the retries ran out (or the failure was not retryable)."""
        call = self.call
        if isinstance(last, RetryableResponse):
            return ApiError.from_response(
                last.response,
                attempts=self.attempts,
                idempotency_key=call.idempotency_key,
                retry_after_s=last.retry_after_s,
            )
        return ConnectionFailed(
            method=call.method,
            path=call.path,
            attempts=self.attempts,
            idempotency_key=call.idempotency_key,
            reason=describe(last)[0],
        )


# --- building calls ----------------------------------------------------------------------------


def path_id(value: Id) -> str:
    """Path ids are parsed here: a malformed one fails locally, never as a strange URL."""
    return str(value if isinstance(value, UUID) else UUID(str(value)))


def write_call(
    method: str,
    path: str,
    body: dict[str, Any] | None,
    idempotency_key: str | None = None,
    *,
    stamp: str | None = None,
) -> Call[WriteResult]:
    """A critical write: keyed (a fresh UUID unless the caller names one), answered with a
    ``WriteResult``."""
    key = str(uuid.uuid4()) if idempotency_key is None else idempotency_key

    def parse(response: httpx.Response, attempts: int) -> WriteResult:
        return WriteResult.model_validate(
            {
                **response.json(),
                "http_status": response.status_code,
                "attempts": attempts,
                "idempotency_key": key,
            }
        )

    return Call(method, path, parse, json=body, idempotency_key=key, stamp=stamp)


def read_call(path: str, model: type[M], **params: Any) -> Call[M]:
    def parse(response: httpx.Response, _: int) -> M:
        return model.model_validate(response.json())

    return Call("GET", path, parse, params=params)
