"""The retry policy's arithmetic: capped exponential backoff with jitter, Retry-After."""

from __future__ import annotations

import httpx
import pytest
from tenacity import RetryCallState, Retrying

from ccat_api.client.retry import RetryableResponse, RetryPolicy, retry_after_s, should_retry


def _state(attempt: int, failure: BaseException) -> RetryCallState:
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    state.set_exception((type(failure), failure, None))
    return state


def _busy(retry_after: str | None) -> RetryableResponse:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return RetryableResponse(
        httpx.Response(503, headers=headers, request=httpx.Request("GET", "http://g/x"))
    )


def _refused(status: int) -> RetryableResponse:
    return RetryableResponse(httpx.Response(status, request=httpx.Request("POST", "http://g/x")))


def test_backoff_doubles_and_is_capped() -> None:
    wait = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=3, backoff_jitter_s=0).wait()
    failure = httpx.ConnectError("refused")
    assert [wait(_state(n, failure)) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_backoff_jitter_stays_within_its_bound() -> None:
    wait = RetryPolicy(backoff_initial_s=1, backoff_max_s=1, backoff_jitter_s=0.25).wait()
    delays = {wait(_state(3, httpx.ReadError("reset"))) for _ in range(200)}
    assert all(1 <= d <= 1.25 for d in delays)
    assert len(delays) > 1


def test_retry_after_replaces_the_backoff_and_is_capped() -> None:
    wait = RetryPolicy(backoff_initial_s=4, backoff_jitter_s=0, retry_after_cap_s=10).wait()
    assert wait(_state(1, _busy("2"))) == 2
    assert wait(_state(1, _busy("3600"))) == 10
    assert wait(_state(1, _busy(None))) == 4


def test_retry_after_reads_seconds_and_http_dates() -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after_s(response("5")) == 5
    assert retry_after_s(response("-3")) == 0
    assert retry_after_s(response("Wed, 21 Oct 2015 07:28:10 GMT"), now=1445412480) == 10
    assert retry_after_s(response("soon")) is None
    assert retry_after_s(httpx.Response(503)) is None


@pytest.mark.parametrize(
    ("failure", "keyed", "unkeyed"),
    [
        (httpx.ConnectError("refused"), True, True),
        (httpx.ConnectTimeout("slow"), True, True),
        (httpx.ReadError("reset"), True, False),
        (httpx.ReadTimeout("slow"), True, False),
        (httpx.RemoteProtocolError("closed"), True, False),
        (httpx.UnsupportedProtocol("ftp"), False, False),
        (ValueError("a bug"), False, False),
        (_refused(429), True, True),
        (_refused(503), True, True),
        (_refused(502), True, False),
    ],
)
def test_what_may_be_sent_again(failure: BaseException, keyed: bool, unkeyed: bool) -> None:
    assert should_retry(failure, replay_safe=True) is keyed
    assert should_retry(failure, replay_safe=False) is unkeyed


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_max_s"):
        RetryPolicy(backoff_max_s=-1)
