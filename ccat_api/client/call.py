"""One request described once, and run by either client.

A ``Call`` says what to send (method, path, body, query, Idempotency-Key, whether it may be
re-sent) and how to read the answer. An ``Operation`` is a builder of calls declared once on
``Endpoints``; reading it from a ``Client`` gives a plain method, from an ``AsyncClient`` a
coroutine method, with the builder's signature. The key is drawn when the call is built, so
every retry of one logical call carries the same key.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeAlias, TypeVar, overload

import httpx

from ccat_api.client.errors import ApiError, ClientError, ConnectionFailed
from ccat_api.client.retry import RETRY_STATUSES, RetryableResponse, describe

T = TypeVar("T")
P = ParamSpec("P")

AsyncMethod: TypeAlias = Callable[P, Coroutine[Any, Any, T]]
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

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}

    def send_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"headers": self.headers()}
        if self.json is not None:
            options["json"] = self.json
        if self.params:
            options["params"] = {k: v for k, v in self.params.items() if v is not None}
        return options

    def check(self, response: httpx.Response, attempt: int) -> None:
        """Inside the retry loop: a retryable status raises ``RetryableResponse``, any other
        error status an ``ApiError``, which the loop does not retry."""
        if response.is_success or response.status_code in self.answers:
            return
        if response.status_code in RETRY_STATUSES:
            raise RetryableResponse(response)
        raise ApiError.from_response(
            response, attempts=attempt, idempotency_key=self.idempotency_key
        )

    def failure(self, last: RetryableResponse | httpx.TransportError, attempts: int) -> ClientError:
        """What to raise when the retries ran out (or the failure was not retryable)."""
        if isinstance(last, RetryableResponse):
            return ApiError.from_response(
                last.response,
                attempts=attempts,
                idempotency_key=self.idempotency_key,
                retry_after_s=last.retry_after_s,
            )
        return ConnectionFailed(
            method=self.method,
            path=self.path,
            attempts=attempts,
            idempotency_key=self.idempotency_key,
            reason=describe(last)[0],
        )


class SyncRunner(abc.ABC):
    @abc.abstractmethod
    def _execute(self, call: Call[T]) -> T: ...


class AsyncRunner(abc.ABC):
    @abc.abstractmethod
    async def _execute(self, call: Call[T]) -> T: ...


class Operation(Generic[P, T]):
    """A call builder that becomes a method of whichever client reads it."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Operation[P, T]: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type[Any]) -> AsyncMethod[P, T]: ...

    def __get__(
        self, client: SyncRunner | AsyncRunner | None, owner: type[Any]
    ) -> Operation[P, T] | Callable[P, T] | AsyncMethod[P, T]:
        if client is None:
            return self
        build = self.build
        if isinstance(client, AsyncRunner):
            runner = client

            @functools.wraps(build)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> T:
                return await runner._execute(build(*args, **kwargs))

            return run_async
        sync_runner = client

        @functools.wraps(build)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return sync_runner._execute(build(*args, **kwargs))

        return run


def operation(build: Callable[P, Call[T]]) -> Operation[P, T]:
    return Operation(build)
