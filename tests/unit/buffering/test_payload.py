from __future__ import annotations

from ccat_api.buffering.envelope import (
    BufferedTransaction,
    Envelope,
    Op,
    Principal,
    Step,
)
from ccat_api.buffering.holds import hold_reason
from ccat_api.buffering.payload import build_payload

P = Principal(token_id=1, name="i", role="operator")


def tx(n: int, *steps: Step, deps: tuple[str, ...] = (), version: int = 1) -> BufferedTransaction:
    env = Envelope(
        tx_id=f"tx{n}", site="s", principal=P, created_at="2026-01-01T00:00:00+00:00",
        steps=steps, schema_version=version,
    )  # fmt: skip
    return BufferedTransaction(env, seq=n, deps=deps)


def test_groups_insert_parents_first_whatever_the_acceptance_order() -> None:
    payload = build_payload(
        [
            tx(1, Step(Op.INSERT, "raw_data_files", "f1", {"name": "a"})),
            tx(2, Step(Op.INSERT, "executed_obs_units", "e1", {"status": "running"})),
            tx(3, Step(Op.INSERT, "raw_data_packages", "p1", {"name": "p"})),
        ]
    )
    assert [(g["model"], g["op"]) for g in payload["groups"]] == [
        ("executed_obs_units", "insert"),
        ("raw_data_packages", "insert"),
        ("raw_data_files", "insert"),
    ]
    assert payload["txs"] == [
        {"tx_id": "tx1", "seq": 1, "deps": []},
        {"tx_id": "tx2", "seq": 2, "deps": []},
        {"tx_id": "tx3", "seq": 3, "deps": []},
    ]


def test_updates_of_a_row_inserted_in_the_batch_fold_into_the_insert() -> None:
    payload = build_payload(
        [
            tx(1, Step(Op.INSERT, "executed_obs_units", "e1", {"status": "running", "end_time": None})),
            tx(2, Step(Op.UPDATE, "executed_obs_units", "e1", {"status": "success", "end_time": "t"})),
        ]
    )  # fmt: skip
    assert payload["groups"] == [
        {
            "model": "executed_obs_units",
            "op": "insert",
            "columns": ["end_time", "id", "status"],
            "rows": [{"id": "e1", "status": "success", "end_time": "t"}],
        }
    ]
    # The careful path sees every step as it was accepted.
    careful = build_payload(
        [
            tx(1, Step(Op.INSERT, "executed_obs_units", "e1", {"status": "running"})),
            tx(2, Step(Op.UPDATE, "executed_obs_units", "e1", {"status": "success"})),
        ],
        fast=False,
    )
    assert "groups" not in careful
    assert [s["op"] for t in careful["txs"] for s in t["steps"]] == ["insert", "update"]


def test_updates_coalesce_per_row_in_order_and_group_by_columns() -> None:
    payload = build_payload(
        [
            tx(1, Step(Op.UPDATE, "raw_data_packages", "p1", {"status": "complete"})),
            tx(2, Step(Op.UPDATE, "raw_data_packages", "p1", {"status": "failed", "checksum": "c"})),
            tx(3, Step(Op.UPDATE, "raw_data_packages", "p2", {"status": "complete"})),
        ]
    )  # fmt: skip
    groups = {tuple(g["columns"]): g["rows"] for g in payload["groups"]}
    assert groups == {
        ("checksum", "id", "status"): [{"id": "p1", "status": "failed", "checksum": "c"}],
        ("id", "status"): [{"id": "p2", "status": "complete"}],
    }


def test_deletes_run_last_children_first() -> None:
    payload = build_payload(
        [
            tx(1, Step(Op.DELETE, "raw_data_packages", "p1")),
            tx(2, Step(Op.DELETE, "raw_data_files", "f1")),
            tx(3, Step(Op.INSERT, "executed_obs_units", "e1", {})),
        ]
    )
    assert [(g["model"], g["op"]) for g in payload["groups"]] == [
        ("executed_obs_units", "insert"),
        ("raw_data_files", "delete"),
        ("raw_data_packages", "delete"),
    ]


def test_an_envelope_this_processor_cannot_send_is_held_naming_the_upgrade() -> None:
    ok = Step(Op.UPDATE, "raw_data_packages", "p1", {"status": "complete"})
    assert hold_reason(tx(1, ok)) is None
    newer = hold_reason(tx(1, ok, version=99))
    assert newer is not None
    assert newer.code == "processor_behind"
    assert "envelope version 99" in newer.reason
    assert "upgrade the processor" in newer.reason
    bad_model = hold_reason(tx(1, Step(Op.INSERT, "api_tokens", "x", {})))
    assert bad_model is not None
    assert "api_tokens" in bad_model.reason
    bad_column = hold_reason(tx(1, Step(Op.UPDATE, "raw_data_packages", "p", {"colour": 1})))
    assert bad_column is not None
    assert "colour" in bad_column.reason


def test_an_older_envelope_goes_to_main_whose_contract_decides() -> None:
    # A column this code's models renamed since version 0 is main's to map, not ours.
    old = tx(1, Step(Op.UPDATE, "raw_data_packages", "p", {"colour": 1}), version=0)
    assert hold_reason(old) is None


def test_the_payload_names_every_envelope_version_in_the_batch() -> None:
    ok = Step(Op.UPDATE, "raw_data_packages", "p1", {"status": "complete"})
    assert build_payload([tx(1, ok), tx(2, ok, version=0)])["versions"] == [0, 1]
    assert build_payload([tx(1, ok)], fast=False)["versions"] == [1]
