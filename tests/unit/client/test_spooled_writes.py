"""Both clients with a spool, against a scripted peer that can be down: a write is on disk
before it is sent and leaves only once answered, waits in order while the gateway is away,
goes out first once it is back, and a refusal is told to whoever can still hear it."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccat_api.client import (
    ApiError,
    AsyncClient,
    Client,
    SpoolError,
    SpoolFull,
    SpoolOptions,
    WriteResult,
    WriteSpooled,
)
from tests.unit.client.fake_gateway import BASE_URL, FAST, TOKEN, Kind, accepted, refused

LOGS = "/api/transfer/transfers/019a4c2e-7f00-7000-8000-000000000005/logs"
TRANSFER = "019a4c2e-7f00-7000-8000-000000000005"


@dataclass
class Gateway:
    """Takes every write while up (fresh ids each time; a key it has seen gets its first
    answer again, as the real one does), refuses connections while down and answers 503 while
    busy; ``refuse`` answers the writes whose ``message`` it names with a refusal instead."""

    up: bool = True
    busy: bool = False
    silent_s: float | None = None
    """While set: a host that does not answer, a connect timeout after this long."""
    answer_after_s: float = 0.0
    refuse: dict[str, httpx.Response] = field(default_factory=dict)
    taken: list[httpx.Request] = field(default_factory=list)
    tried: int = 0
    first_answers: dict[str, httpx.Response] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.tried += 1
        if self.silent_s is not None:
            time.sleep(self.silent_s)
            raise httpx.ConnectTimeout("timed out")
        if not self.up:
            raise httpx.ConnectError("connection refused")
        time.sleep(self.answer_after_s)
        if self.busy:
            return refused(503, "buffer unavailable", None, "buffer_unavailable")
        key = request.headers["idempotency-key"]
        if key in self.first_answers:
            first = self.first_answers[key]
            return httpx.Response(first.status_code, content=first.content)
        self.taken.append(request)
        body = json.loads(request.content) if request.content else {}
        answer = self.refuse.get(body.get("message", ""), accepted())
        self.first_answers[key] = answer
        return answer

    def messages(self) -> list[str]:
        return [json.loads(r.content)["message"] for r in self.taken]


class Instrument:
    """A client of either kind with a spool, driven from synchronous test code."""

    def __init__(self, kind: Kind, gateway: Gateway, path: Path, token: str = TOKEN,
                 **spool: Any) -> None:  # fmt: skip
        options = SpoolOptions(path, **{"background": False, **spool})
        transport = httpx.MockTransport(gateway)
        self.kind = kind
        self.client: Client | AsyncClient
        if kind == "sync":
            self.client = Client(BASE_URL, token, retry=FAST, transport=transport, spool=options)
        else:
            self.loop = asyncio.Runner()
            self.client = AsyncClient(
                BASE_URL, token, retry=FAST, transport=transport, spool=options
            )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if not inspect.iscoroutinefunction(method):
            return method  # type: ignore[no-any-return]
        return lambda *args, **kwargs: self.loop.run(method(*args, **kwargs))

    def log(self, message: str, **extra: Any) -> WriteResult:
        result: WriteResult = self.log_transfer(TRANSFER, {"message": message}, **extra)
        return result

    def close(self) -> None:
        if isinstance(self.client, AsyncClient):
            self.loop.run(self.client.aclose())
            self.loop.close()
        else:
            self.client.close()


def written_while_down(
    instrument: Instrument, gateway: Gateway, *messages: str
) -> list[WriteSpooled]:
    """Log ``messages`` while the gateway is down (each is spooled); then it is back."""
    gateway.up = False
    spooled = []
    for message in messages:
        with pytest.raises(WriteSpooled) as raised:
            instrument.log(message)
        spooled.append(raised.value)
    gateway.up = True
    return spooled


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> Kind:
    kind: Kind = request.param
    return kind


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture
def instrument(kind: Kind, gateway: Gateway, tmp_path: Path) -> Iterator[Instrument]:
    opened = Instrument(kind, gateway, tmp_path / "spool.db")
    yield opened
    opened.close()


def test_a_write_the_gateway_takes_is_answered_and_leaves_the_spool(
    instrument: Instrument, gateway: Gateway
) -> None:
    result = instrument.log("one")
    assert result.status == "buffered"
    assert gateway.taken[0].headers["idempotency-key"] == result.idempotency_key
    assert instrument.spool_status().entries == 0


def test_a_write_the_gateway_cannot_take_is_kept_with_its_key_and_why(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.up = False
    with pytest.raises(WriteSpooled, match="kept as write #1") as raised:
        instrument.log("one")
    spooled = raised.value
    assert "connection refused" in spooled.reason
    status = instrument.spool_status()
    assert status.entries == 1
    assert status.head is not None
    assert status.head.idempotency_key == spooled.idempotency_key
    assert status.head.attempts == FAST.max_attempts
    assert status.head.last_error is not None
    assert "no answer after 4 attempt(s)" in status.head.last_error


def test_writes_during_an_outage_are_spooled_without_waiting_on_the_gateway(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.up = False
    with pytest.raises(WriteSpooled):
        instrument.log("one")
    tried = gateway.tried
    started = time.monotonic()
    for n in range(20):
        with pytest.raises(WriteSpooled, match="connection refused"):
            instrument.log(f"more {n}")
    assert gateway.tried == tried
    assert time.monotonic() - started < 2
    assert instrument.spool_status().entries == 21


def test_a_gateway_that_did_not_answer_is_tried_again_with_one_attempt(
    kind: Kind, gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument(kind, gateway, tmp_path / "spool.db", resend_initial_s=0.01)
    try:
        written_while_down(instrument, gateway, "first")
        assert gateway.tried == FAST.max_attempts
        gateway.silent_s = 0.1  # its host is down now
        time.sleep(0.02)
        started = time.monotonic()
        with pytest.raises(WriteSpooled, match="ConnectTimeout"):
            instrument.log("second")
        assert gateway.tried == FAST.max_attempts + 1
        assert time.monotonic() - started < 2 * 0.1
    finally:
        instrument.close()


def test_with_a_background_sender_a_write_in_an_outage_never_waits_on_the_network(
    gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument(
        "sync", gateway, tmp_path / "spool.db", background=True, resend_initial_s=0.01,
        resend_max_s=0.01,
    )  # fmt: skip
    try:
        written_while_down(instrument, gateway, "first")
        gateway.silent_s = 0.3  # each try of the background sender now takes this long
        time.sleep(0.05)
        for n in range(5):
            started = time.monotonic()
            with pytest.raises(WriteSpooled):
                instrument.log(f"more {n}")
            assert time.monotonic() - started < 0.1
        gateway.silent_s = None
        deadline = time.monotonic() + 10
        while instrument.spool_status().entries and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.messages() == ["first", *(f"more {n}" for n in range(5))]
    finally:
        instrument.close()


def test_a_write_made_while_a_flush_sends_a_backlog_goes_behind_it_at_once(
    gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument("sync", gateway, tmp_path / "spool.db")
    try:
        written_while_down(instrument, gateway, *(f"early {n}" for n in range(20)))
        gateway.answer_after_s = 0.02
        flush = threading.Thread(target=instrument.flush_spool)
        flush.start()
        while len(gateway.taken) < 2:  # the flush is under way, its first write answered
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(WriteSpooled, match="behind earlier writes"):
            instrument.log("latest")
        assert time.monotonic() - started < 0.1
        flush.join(timeout=30)
        assert gateway.messages() == [*(f"early {n}" for n in range(20)), "latest"]
    finally:
        instrument.close()


def test_once_the_gateway_answers_the_spooled_writes_go_first_in_order(
    kind: Kind, gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument(kind, gateway, tmp_path / "spool.db", resend_initial_s=0.01)
    try:
        spooled = written_while_down(instrument, gateway, "early 0", "early 1", "early 2")
        keys = [s.idempotency_key for s in spooled]
        time.sleep(0.02)
        latest = instrument.log("latest")
        assert gateway.messages() == ["early 0", "early 1", "early 2", "latest"]
        assert [r.headers["idempotency-key"] for r in gateway.taken] == [
            *keys,
            latest.idempotency_key,
        ]
        assert instrument.spool_status().entries == 0
    finally:
        instrument.close()


def test_a_503_after_every_attempt_keeps_the_write(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.busy = True
    with pytest.raises(WriteSpooled, match="503 buffer_unavailable: buffer unavailable"):
        instrument.log("one")
    assert instrument.spool_status().entries == 1


def test_a_refusal_of_the_callers_own_write_is_raised_and_nothing_is_kept(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.refuse["bad"] = refused(422, "no such transfer", "transfer_id", "invalid_reference")
    with pytest.raises(ApiError) as raised:
        instrument.log("bad")
    assert raised.value.status_code == 422
    status = instrument.spool_status()
    assert (status.entries, status.rejected) == (0, 0)


def test_a_spooled_write_refused_for_good_is_set_aside_and_the_rest_goes_on(
    instrument: Instrument, gateway: Gateway
) -> None:
    written_while_down(instrument, gateway, "first", "bad", "last")
    gateway.refuse["bad"] = refused(409, "the transfer is completed", "status", "state_conflict")
    report = instrument.flush_spool()
    assert (report.delivered, report.remaining, report.blocked_by) == (2, 0, None)
    assert len(report.rejected) == 1
    assert "#2" in report.rejected[0]
    assert "409" in report.rejected[0]
    assert gateway.messages() == ["first", "bad", "last"]
    status = instrument.spool_status()
    assert (status.entries, status.rejected) == (0, 1)


def test_a_spooled_write_whose_token_is_refused_waits_for_a_good_one(
    instrument: Instrument, gateway: Gateway
) -> None:
    written_while_down(instrument, gateway, "first")
    gateway.refuse["first"] = refused(401, "token revoked", None, "unauthorized")
    report = instrument.flush_spool()
    assert report.blocked_by is not None
    assert "401" in report.blocked_by
    assert (report.delivered, report.remaining, report.rejected) == (0, 1, [])


def test_spooled_writes_are_sent_only_with_the_token_they_were_made_with(
    kind: Kind, gateway: Gateway, tmp_path: Path
) -> None:
    made_with = Instrument(kind, gateway, tmp_path / "spool.db", token="ccat_aa11_secret")
    written_while_down(made_with, gateway, "first")
    made_with.close()
    tried = gateway.tried
    other = Instrument(kind, gateway, tmp_path / "spool.db", token="ccat_bb22_secret")
    try:
        report = other.flush_spool()
        assert report.blocked_by is not None
        assert "with token aa11: send it with that gateway and token" in report.blocked_by
        assert (report.delivered, report.remaining) == (0, 1)
        with pytest.raises(WriteSpooled, match="token aa11"):
            other.log("second")
        assert gateway.tried == tried
    finally:
        other.close()


def test_the_time_a_write_was_made_travels_with_it(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.up = False
    before = datetime.now().astimezone()
    with pytest.raises(WriteSpooled):
        instrument.start_executed_obs_unit({"obs_unit_id": 1})
    with pytest.raises(WriteSpooled):
        instrument.log("with its own time", idempotency_key="log-1")
    spooled_at = datetime.now().astimezone()
    time.sleep(0.01)
    gateway.up = True
    assert instrument.flush_spool().delivered == 2
    start, line = (json.loads(r.content) for r in gateway.taken)
    assert before <= datetime.fromisoformat(start["start_time"]) <= spooled_at
    assert before <= datetime.fromisoformat(line["at"]) <= spooled_at


def test_a_full_spool_refuses_the_write_and_sends_nothing(
    kind: Kind, gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument(kind, gateway, tmp_path / "spool.db", max_entries=2)
    try:
        written_while_down(instrument, gateway, "kept 0", "kept 1")
        tried = gateway.tried
        with pytest.raises(SpoolFull, match="neither stored nor sent"):
            instrument.log("one too many")
        assert gateway.tried == tried
        assert instrument.spool_status().entries == 2
        assert instrument.flush_spool().delivered == 2
        assert gateway.messages() == ["kept 0", "kept 1"]
    finally:
        instrument.close()


def test_the_background_sender_delivers_once_the_gateway_answers(
    kind: Kind, gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument(
        kind, gateway, tmp_path / "spool.db", background=True, resend_initial_s=0.01,
        resend_max_s=0.05,
    )  # fmt: skip
    try:
        written_while_down(instrument, gateway, "while down")

        async def idle() -> None:
            await asyncio.sleep(0.05)

        deadline = time.monotonic() + 10
        while instrument.spool_status().entries and time.monotonic() < deadline:
            if kind == "async":
                instrument.loop.run(idle())  # the sender is a task: it runs with the loop
            else:
                time.sleep(0.05)
        assert gateway.messages() == ["while down"]
        assert instrument.spool_status().entries == 0
    finally:
        instrument.close()


def test_threads_writing_at_once_each_get_their_answer_in_order(
    gateway: Gateway, tmp_path: Path
) -> None:
    instrument = Instrument("sync", gateway, tmp_path / "spool.db")
    answers: dict[str, WriteResult] = {}
    failures: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for n in range(25):
                answers[f"{thread}-{n}"] = instrument.log(f"{thread}-{n}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        instrument.close()
    assert failures == []
    assert len(answers) == 100
    sent = gateway.messages()
    assert sorted(sent) == sorted(answers)
    for t in range(4):
        mine = [m for m in sent if m.startswith(f"{t}-")]
        assert mine == [f"{t}-{n}" for n in range(25)]


def test_a_client_without_a_spool_has_nothing_to_flush(gateway: Gateway) -> None:
    with (
        Client(BASE_URL, TOKEN, transport=httpx.MockTransport(gateway)) as client,
        pytest.raises(SpoolError, match="no spool"),
    ):
        client.flush_spool()
