from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from ccat_api.buffering.envelope import Op
from ccat_api.buffering.layers import Layer, parse_layers
from ccat_api.buffering.overlay import OverlayRecord

PK = str(uuid.uuid4())
EOU = str(uuid.uuid4())
BASE = {
    "id": uuid.UUID(PK),
    "name": "a",
    "relative_path": "x/a.fits",
    "raw_data_package_id": None,
    "size_bytes": 5,
}


def layer(seq: int, op: Op, values: dict[str, object]) -> Layer:
    return Layer(f"tx{seq}", seq, op, values)


def test_layers_parse_with_separators_inside_values() -> None:
    values = {"relative_path": "weird|name\nwith newline", "n": 1}
    raw = f"{'a' * 36}|3|update|{orjson.dumps(values).decode()}\n{'b' * 36}|4|delete|{{}}"
    layers = parse_layers(raw)
    assert [(x.seq, x.op) for x in layers] == [(3, Op.UPDATE), (4, Op.DELETE)]
    assert layers[0].values == values


def test_insert_layer_is_the_record_with_later_updates_applied() -> None:
    record = OverlayRecord(
        "raw_data_files",
        PK,
        (
            layer(1, Op.INSERT, {"name": "a", "executed_obs_unit_id": EOU, "created_at": "2026-01-01T00:00:00+00:00"}),
            layer(2, Op.UPDATE, {"name": "b"}),
        ),
    )  # fmt: skip
    state = record.fold(None)
    assert state == {
        "id": uuid.UUID(PK),
        "name": "b",
        "executed_obs_unit_id": uuid.UUID(EOU),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert not record.needs_base


def test_update_patches_the_replica_row() -> None:
    package = str(uuid.uuid4())
    record = OverlayRecord(
        "raw_data_files", PK, (layer(5, Op.UPDATE, {"raw_data_package_id": package}),)
    )
    assert record.needs_base
    assert record.fold(BASE) == {**BASE, "raw_data_package_id": uuid.UUID(package)}


def test_update_without_a_base_shows_nothing() -> None:
    record = OverlayRecord("raw_data_files", PK, (layer(5, Op.UPDATE, {"name": "z"}),))
    assert record.fold(None) is None


def test_delete_hides_the_record() -> None:
    record = OverlayRecord(
        "raw_data_files", PK, (layer(5, Op.UPDATE, {"name": "z"}), layer(6, Op.DELETE, {}))
    )
    assert record.fold(BASE) is None
    assert record.tx_ids == ("tx5", "tx6")
