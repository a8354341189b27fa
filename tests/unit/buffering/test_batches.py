"""Stream entries as the processor reads them: an envelope it cannot read is named, with its
reason, so it can be dead-lettered instead of stopping replay."""

from __future__ import annotations

import orjson

from ccat_api.buffering.batches import parse_entry
from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Principal


def entry_fields(envelope: bytes, tx_id: str) -> dict[bytes, bytes]:
    return {b"tx": tx_id.encode(), b"seq": b"7", b"deps": b"a,b", b"env": envelope}


def an_envelope() -> tuple[str, bytes]:
    builder = TransactionBuilder("site", Principal(None, "test", "operator"))
    builder.update("executed_obs_units", "0190f3c2-0000-7000-8000-000000000001", {}, {})
    envelope = builder.build()
    return envelope.tx_id, envelope.to_json()


def test_a_readable_entry_is_parsed() -> None:
    tx_id, envelope = an_envelope()
    entry = parse_entry(b"1-0", entry_fields(envelope, tx_id))
    assert entry.tx is not None
    assert (entry.tx_id, entry.tx.seq, entry.tx.deps, entry.unreadable) == (
        tx_id,
        7,
        ("a", "b"),
        None,
    )


def test_an_unknown_op_makes_the_entry_unreadable_with_the_reason() -> None:
    tx_id, envelope = an_envelope()
    data = orjson.loads(envelope)
    data["steps"][0]["op"] = "upsert"
    entry = parse_entry(b"1-0", entry_fields(orjson.dumps(data), tx_id))
    assert entry.tx is None
    assert entry.tx_id == tx_id
    assert entry.unreadable is not None
    assert "upsert" in entry.unreadable


def test_an_entry_that_is_not_json_is_unreadable() -> None:
    entry = parse_entry(b"1-0", entry_fields(b"{not json", "t1"))
    assert (entry.tx_id, entry.tx) == ("t1", None)
    assert entry.unreadable


def test_an_entry_whose_fields_are_gone_is_neither() -> None:
    entry = parse_entry(b"1-0", None)
    assert (entry.tx_id, entry.tx, entry.unreadable) == (None, None, None)
