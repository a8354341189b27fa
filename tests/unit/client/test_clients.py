"""Both clients against a scripted peer: idempotency keys, what is retried and what is not,
typed errors, and how the answers are read."""

from __future__ import annotations

import uuid

import httpx
import pydantic
import pytest

from ccat_api.client import (
    ApiError,
    ConnectionFailed,
    Health,
    RetryEvent,
    RetryPolicy,
    TransactionFailed,
    TransactionState,
    VisibilityTimeout,
    WriteResult,
)
from tests.unit.client.fake_gateway import (
    FakeGateway,
    Kind,
    accepted,
    refused,
    run,
    site_info,
    transaction,
)

KINDS = ["sync", "async"]
START = {"obs_unit_id": 1, "instrument_module_id": 2}
TX = "019a4c2e-7f00-7000-8000-000000000001"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    kind: Kind = request.param
    return kind


def test_a_write_carries_a_fresh_uuid_idempotency_key(kind: Kind) -> None:
    gateway = FakeGateway([accepted(), accepted()])
    first = run(kind, gateway, "start_executed_obs_unit", START)
    second = run(kind, gateway, "start_executed_obs_unit", START)
    keys = gateway.keys()
    assert keys == [first.idempotency_key, second.idempotency_key]
    assert keys[0] != keys[1]
    assert all(uuid.UUID(str(k)) for k in keys)
    assert isinstance(first, WriteResult)
    assert (first.http_status, first.attempts, first.status) == (201, 1, "buffered")


def test_a_write_is_retried_with_the_same_key_when_its_answer_is_lost(kind: Kind) -> None:
    gateway = FakeGateway(
        [
            httpx.ReadError("connection reset by peer"),
            httpx.RemoteProtocolError("closed"),
            accepted(),
        ]
    )
    events: list[RetryEvent] = []
    result = run(kind, gateway, "start_executed_obs_unit", START, events=events)
    assert result.attempts == 3
    assert gateway.keys() == [result.idempotency_key] * 3
    assert [e.attempt for e in events] == [1, 2]
    assert "ReadError" in events[0].reason


def test_the_callers_own_key_is_sent_on_every_attempt(kind: Kind) -> None:
    gateway = FakeGateway([httpx.ReadTimeout("slow"), accepted(200)])
    result = run(kind, gateway, "finish_executed_obs_unit", TX, idempotency_key="obs-0042-finish")
    assert gateway.keys() == ["obs-0042-finish", "obs-0042-finish"]
    assert result.idempotency_key == "obs-0042-finish"
    assert result.http_status == 200


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_gateway_errors_are_retried(kind: Kind, status: int) -> None:
    gateway = FakeGateway([httpx.Response(status), accepted()])
    assert run(kind, gateway, "register_file", _file()).attempts == 2


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limited"), (503, "buffer_near_capacity")])
def test_the_gateways_refusals_are_retried_after_their_retry_after(
    kind: Kind, status: int, code: str
) -> None:
    slow_down = refused(status, "come back later", None, code)
    slow_down.headers["Retry-After"] = "0.02"
    gateway = FakeGateway([slow_down, slow_down, accepted()])
    events: list[RetryEvent] = []
    policy = RetryPolicy(backoff_initial_s=5, backoff_jitter_s=0)
    result = run(kind, gateway, "start_executed_obs_unit", START, retry=policy, events=events)
    assert result.attempts == 3
    assert [(e.status_code, e.delay_s) for e in events] == [(status, 0.02)] * 2
    assert gateway.keys() == [result.idempotency_key] * 3


def test_a_rate_limited_request_without_a_key_is_sent_again(kind: Kind) -> None:
    limited = refused(429, "come back later", None, "rate_limited")
    limited.headers["Retry-After"] = "0"
    gateway = FakeGateway([limited, httpx.Response(200, json={"retried": [TX]})])
    assert run(kind, gateway, "retry_transaction", TX).retried == [TX]
    assert gateway.keys() == [None, None]


def test_retry_after_is_honoured_up_to_its_cap(kind: Kind) -> None:
    busy = refused(503, "buffer unavailable", None, "service_unavailable")
    busy.headers["Retry-After"] = "7"
    gateway = FakeGateway([busy, accepted()])
    events: list[RetryEvent] = []
    policy = RetryPolicy(backoff_jitter_s=0, retry_after_cap_s=0.01)
    run(kind, gateway, "start_executed_obs_unit", START, retry=policy, events=events)
    assert [(e.status_code, e.delay_s) for e in events] == [(503, 0.01)]


@pytest.mark.parametrize(
    ("status", "field", "code"),
    [
        (400, "Idempotency-Key", "bad_request"),
        (401, None, "unauthorized"),
        (403, None, "forbidden"),
        (404, None, "not_found"),
        (409, "status", "state_conflict"),
        (422, "obs_unit_id", "invalid_reference"),
    ],
)
def test_other_errors_are_not_retried_and_raise_api_error(
    kind: Kind, status: int, field: str | None, code: str
) -> None:
    gateway = FakeGateway([refused(status, "refused for a reason", field, code)])
    with pytest.raises(ApiError) as raised:
        run(kind, gateway, "start_executed_obs_unit", START)
    error = raised.value
    assert (error.status_code, error.field, error.code) == (status, field, code)
    assert error.detail == "refused for a reason"
    assert error.attempts == 1
    assert error.idempotency_key == gateway.keys()[0]
    assert len(gateway.requests) == 1


def test_retries_stop_after_max_attempts_with_the_last_answer(kind: Kind) -> None:
    gateway = FakeGateway([refused(503, "Redis is down", None, "buffer_unavailable")] * 4)
    with pytest.raises(ApiError) as raised:
        run(kind, gateway, "start_executed_obs_unit", START)
    assert (raised.value.status_code, raised.value.attempts) == (503, 4)
    assert "after 4 attempts" in str(raised.value)
    assert len(gateway.requests) == 4


def test_a_connection_that_keeps_failing_gives_up_naming_the_key(kind: Kind) -> None:
    gateway = FakeGateway([httpx.ConnectError("connection refused")] * 4)
    with pytest.raises(ConnectionFailed) as raised:
        run(kind, gateway, "start_executed_obs_unit", START)
    error = raised.value
    assert error.attempts == 4
    assert error.idempotency_key is not None
    assert error.idempotency_key in str(error)
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_dead_letter_retry_is_not_resent_once_it_may_have_arrived(kind: Kind) -> None:
    gateway = FakeGateway([httpx.ReadError("reset")])
    with pytest.raises(ConnectionFailed):
        run(kind, gateway, "retry_transaction", TX)
    assert len(gateway.requests) == 1
    assert gateway.keys() == [None]


def test_dead_letter_retry_is_resent_when_it_cannot_have_arrived(kind: Kind) -> None:
    gateway = FakeGateway(
        [httpx.ConnectError("refused"), httpx.Response(200, json={"retried": [TX]})]
    )
    assert run(kind, gateway, "retry_transaction", TX).retried == [TX]


def test_discard_answers_none(kind: Kind) -> None:
    gateway = FakeGateway([httpx.Response(204)])
    assert run(kind, gateway, "discard_transaction", TX) is None
    assert gateway.requests[0].url.path == f"/transactions/{TX}/discard"


def test_an_unhealthy_site_is_an_answer_not_an_error(kind: Kind) -> None:
    gateway = FakeGateway([httpx.Response(503, json={"redis": {"ok": False}})])
    health = run(kind, gateway, "health")
    assert health == Health(ok=False, report={"redis": {"ok": False}})
    assert len(gateway.requests) == 1


def test_a_malformed_body_is_refused_before_anything_is_sent(kind: Kind) -> None:
    gateway = FakeGateway()
    with pytest.raises(pydantic.ValidationError, match="mean_pwv_mm"):
        run(kind, gateway, "start_executed_obs_unit", {"obs_unit_id": 1, "mean_pwv_mm": -1})
    with pytest.raises(ValueError, match="badly formed"):
        run(kind, gateway, "get_executed_obs_unit", "../../users")
    assert gateway.requests == []


def test_reads_send_no_key_and_only_the_filters_given(kind: Kind) -> None:
    page = {"items": [], "total": 0, "limit": 5, "offset": 0}
    gateway = FakeGateway([httpx.Response(200, json=page)])
    found = run(kind, gateway, "list_raw_data_files", executed_obs_unit_id=TX, limit=5)
    assert found.total == 0
    request = gateway.requests[0]
    assert dict(request.url.params) == {"executed_obs_unit_id": TX, "limit": "5"}
    assert gateway.keys() == [None]
    assert request.headers["authorization"] == "Bearer ccat_test_secret"


def test_wait_visible_polls_until_the_replica_shows_it(kind: Kind) -> None:
    gateway = FakeGateway(
        [transaction("buffered"), transaction("applied"), transaction("visible")],
        routes={"/api/site/info": lambda: site_info("secondary")},
    )
    state = run(kind, gateway, "wait_visible", TX, timeout_s=10, poll_interval_s=0.001)
    assert isinstance(state, TransactionState)
    assert state.state == "visible"
    polls = [r for r in gateway.requests if r.url.path == f"/transactions/{TX}"]
    assert len(polls) == 3


def test_wait_visible_at_main_is_done_once_applied(kind: Kind) -> None:
    gateway = FakeGateway(
        [transaction("applied")], routes={"/api/site/info": lambda: site_info("main")}
    )
    assert run(kind, gateway, "wait_visible", TX, timeout_s=10).state == "applied"


@pytest.mark.parametrize("state", ["failed", "discarded"])
def test_wait_visible_raises_for_a_dead_letter(kind: Kind, state: str) -> None:
    gateway = FakeGateway([transaction(state, error="obs unit 7 does not exist on main")])
    with pytest.raises(TransactionFailed, match="does not exist on main") as raised:
        run(kind, gateway, "wait_visible", TX, timeout_s=10)
    assert raised.value.state is not None
    assert raised.value.state.state == state


def test_wait_visible_gives_up_after_its_timeout(kind: Kind) -> None:
    gateway = FakeGateway(routes={f"/transactions/{TX}": lambda: transaction("buffered")})
    with pytest.raises(VisibilityTimeout, match="still buffered"):
        run(kind, gateway, "wait_visible", TX, timeout_s=0.05, poll_interval_s=0.01)


def _file() -> dict[str, object]:
    return {
        "name": "scan_0001.fits", "relative_path": "2026/11/22/scan_0001.fits",
        "size_bytes": 1024, "checksum": "sha256:0011223344556677", "file_type": "fits",
        "instrument_module_id": 1, "executed_obs_unit_id": TX,
    }  # fmt: skip
