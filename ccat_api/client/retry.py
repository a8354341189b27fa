"""When the SDK sends a request again, and how long it waits first (built on tenacity).

Retried, at most ``max_attempts`` sends in all: transport failures (connect, cut connection,
timeouts), 429 (the token's write quota) and 502/503/504 (503 also for a buffer near
capacity), with capped exponential backoff plus jitter, or the answer's ``Retry-After`` up to
``retry_after_cap_s``. Never retried: any other answer. Writes carry one Idempotency-Key on
every attempt; unkeyed POSTs are re-sent only after a 429 or 503 (the gateway refused them
before doing anything) or if unsent.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

if TYPE_CHECKING:
    from ccat_api.client.call import Call

log = logging.getLogger("ccat_api.client")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Refused before anything was done: safe to send again, with or without an Idempotency-Key.
REFUSED_UNDONE = frozenset({429, 503})
# The request never left this machine: safe to send again whatever the operation.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# It may have reached the server: safe only for idempotent requests.
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries. The defaults give up after 4-5 s of backoff in all (plus the time
    the five attempts themselves took), or 40 s when the server keeps answering 429 or 503
    with a ``Retry-After`` of 10 s or more."""

    max_attempts: int = 5
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 5.0
    backoff_jitter_s: float = 0.25
    retry_after_cap_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("backoff_initial_s", "backoff_max_s", "backoff_jitter_s", "retry_after_cap_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def wait(self) -> wait_base:
        backoff = wait_exponential(
            multiplier=self.backoff_initial_s, max=self.backoff_max_s
        ) + wait_random(0, self.backoff_jitter_s)
        return WaitRetryAfter(backoff, cap_s=self.retry_after_cap_s, jitter_s=self.backoff_jitter_s)


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen, for logs and monitors (``on_retry``)."""

    method: str
    path: str
    attempt: int
    delay_s: float
    reason: str
    status_code: int | None


OnRetry = Callable[[RetryEvent], None]


def log_retry(event: RetryEvent) -> None:
    log.warning(
        "%s %s: attempt %d failed (%s); retrying in %.2f s",
        event.method, event.path, event.attempt, event.reason, event.delay_s,
    )  # fmt: skip


class RetryableResponse(Exception):
    """A 429/502/503/504 answer, raised inside the retry loop so tenacity treats it as a
    failure."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.response = response
        self.retry_after_s = retry_after_s(response)


class WaitRetryAfter(wait_base):
    """The server's ``Retry-After`` when it sent one (capped, plus jitter so a site's
    instruments do not come back in the same instant), else the backoff."""

    def __init__(self, backoff: wait_base, *, cap_s: float, jitter_s: float) -> None:
        self.backoff = backoff
        self.cap_s = cap_s
        self.jitter_s = jitter_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(failure, RetryableResponse) and failure.retry_after_s is not None:
            return min(failure.retry_after_s + random.uniform(0, self.jitter_s), self.cap_s)
        return float(self.backoff(retry_state))


def retry_after_s(response: httpx.Response, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def should_retry(failure: BaseException, *, replay_safe: bool) -> bool:
    if isinstance(failure, RetryableResponse):
        return replay_safe or failure.response.status_code in REFUSED_UNDONE
    if isinstance(failure, _NOT_SENT):
        return True
    return replay_safe and isinstance(failure, _MAYBE_SENT)


def describe(failure: BaseException | None) -> tuple[str, int | None]:
    """A short reason for logs, and the HTTP status if the server answered."""
    if isinstance(failure, RetryableResponse):
        return str(failure), failure.response.status_code
    if failure is None:
        return "unknown", None
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__, None


def _retry_options(policy: RetryPolicy, call: Call[Any], on_retry: OnRetry) -> dict[str, Any]:
    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        reason, status = describe(outcome.exception() if outcome is not None else None)
        delay_s = state.next_action.sleep if state.next_action is not None else 0.0
        on_retry(RetryEvent(call.method, call.path, state.attempt_number, delay_s, reason, status))

    return {
        "stop": stop_after_attempt(
            min(policy.max_attempts, call.max_attempts or policy.max_attempts)
        ),
        "wait": policy.wait(),
        "retry": retry_if_exception(lambda e: should_retry(e, replay_safe=call.replay_safe)),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def retrying(policy: RetryPolicy, call: Call[Any], on_retry: OnRetry) -> Retrying:
    return Retrying(**_retry_options(policy, call, on_retry))


def async_retrying(policy: RetryPolicy, call: Call[Any], on_retry: OnRetry) -> AsyncRetrying:
    return AsyncRetrying(**_retry_options(policy, call, on_retry))
