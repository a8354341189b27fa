"""Both clients with a spool while the gateway is away: a write is on disk before it is sent
and leaves only once answered, is kept with its key and why when the gateway cannot take
it, never waits on the network during an outage, and a full spool refuses it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ccat_api.client import SpoolFull, WriteSpooled
from tests.unit.client.fake_gateway import FAST, Kind
from tests.unit.client.spooled_instrument import Gateway, Instrument, written_while_down


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


def test_a_503_after_every_attempt_keeps_the_write(
    instrument: Instrument, gateway: Gateway
) -> None:
    gateway.busy = True
    with pytest.raises(WriteSpooled, match="503 buffer_unavailable: buffer unavailable"):
        instrument.log("one")
    assert instrument.spool_status().entries == 1


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
