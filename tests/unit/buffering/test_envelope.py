from __future__ import annotations

from ccat_api.buffering.envelope import Envelope, Op, Principal, RecordRef, Step


def _envelope() -> Envelope:
    return Envelope(
        tx_id="01930000-0000-7000-8000-000000000001",
        site="observatory",
        principal=Principal(token_id=7, name="instrument", role="operator"),
        created_at="2026-11-22T00:00:00+00:00",
        steps=(
            Step(Op.INSERT, "raw_data_packages", "p1", {"name": "pkg", "size": 2**60 + 1}),
            Step(
                Op.INSERT, "raw_data_files", "f1", {"path": "a|b\nc", "ratio": 0.1 + 0.2},
                refs=(RecordRef("raw_data_packages", "p1"),), index=("x=1",), unique=("p=ab",),
            ),
            Step(Op.UPDATE, "raw_data_packages", "p1", {"file_count": 1}),
        ),
        idempotency_key="k",
    )  # fmt: skip


def test_envelope_survives_json_round_trip_with_exact_numbers() -> None:
    env = _envelope()
    again = Envelope.from_json(env.to_json())
    assert again == env
    assert again.steps[0].values["size"] == 2**60 + 1
    assert again.steps[1].values["ratio"] == 0.1 + 0.2


def test_touched_lists_each_record_once_in_first_touch_order() -> None:
    assert [r.key for r in _envelope().touched()] == ["raw_data_packages:p1", "raw_data_files:f1"]


def test_row_adds_the_primary_key_to_the_values() -> None:
    assert _envelope().steps[2].row() == {"file_count": 1, "id": "p1"}
