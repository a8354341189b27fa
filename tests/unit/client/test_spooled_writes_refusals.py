"""Both clients with a spool, refused: a refusal is told to whoever can still hear it, a
spooled write refused for good is set aside while the rest goes on, and a spooled write
waits for (and is sent only with) the token it was made with."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccat_api.client import ApiError, WriteSpooled
from tests.unit.client.fake_gateway import Kind, refused
from tests.unit.client.spooled_instrument import Gateway, Instrument, written_while_down


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
