"""Both clients with a spool once the gateway is back: spooled writes go out first and in
order, a new write waits behind a backlog being sent, a background sender delivers, and
the time a write was made travels with it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from ccat_api.client import Client, SpoolError, WriteResult, WriteSpooled
from tests.unit.client.fake_gateway import BASE_URL, TOKEN, Kind
from tests.unit.client.spooled_instrument import Gateway, Instrument, written_while_down


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
