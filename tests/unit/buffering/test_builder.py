from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ccat_api.buffering.builder import TransactionBuilder, unique_entry
from ccat_api.buffering.envelope import Op, Principal, RecordRef

PRINCIPAL = Principal(token_id=1, name="instrument", role="operator")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _file(eou: uuid.UUID, package: uuid.UUID | None = None) -> dict[str, object]:
    return {
        "name": "a.fits",
        "relative_path": "obs/a.fits",
        "size_bytes": 10,
        "checksum": "md5:00",
        "file_type": "fits",
        "instrument_module_id": 1,
        "executed_obs_unit_id": eou,
        "raw_data_package_id": package,
        "created_at": NOW,
    }


def test_insert_pregenerates_a_uuid7_and_encodes_values() -> None:
    builder = TransactionBuilder("observatory", PRINCIPAL, now=NOW)
    eou = uuid.uuid4()
    pk = builder.insert("raw_data_files", _file(eou))
    envelope = builder.build()
    assert pk.version == 7
    assert uuid.UUID(envelope.tx_id).version == 7
    step = envelope.steps[0]
    assert step.op is Op.INSERT
    assert step.pk == str(pk)
    assert step.values["executed_obs_unit_id"] == str(eou)
    assert step.values["created_at"] == NOW.isoformat()
    assert "id" not in step.values


def test_refs_name_only_buffered_models_and_skip_nulls() -> None:
    builder = TransactionBuilder("observatory", PRINCIPAL, now=NOW)
    eou = uuid.uuid4()
    builder.insert("raw_data_files", _file(eou))
    (step,) = builder.build().steps
    # instrument_modules is reference data: validated by the caller, never pending.
    assert step.refs == (RecordRef("executed_obs_units", str(eou)),)


def test_index_and_unique_entries_are_filed_for_list_reads_and_claims() -> None:
    builder = TransactionBuilder("observatory", PRINCIPAL, now=NOW)
    eou, package = uuid.uuid4(), uuid.uuid4()
    builder.insert("raw_data_files", _file(eou, package))
    (step,) = builder.build().steps
    assert set(step.index) == {f"executed_obs_unit_id={eou}", f"raw_data_package_id={package}"}
    assert step.unique == (unique_entry("relative_path", "obs/a.fits"),)
    assert " " not in step.unique[0]


def test_update_keeps_the_record_findable_under_old_and_new_values() -> None:
    builder = TransactionBuilder("observatory", PRINCIPAL, now=NOW)
    old, new, eou = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    builder.update(
        "raw_data_files",
        uuid.uuid4(),
        {"raw_data_package_id": new},
        current={"executed_obs_unit_id": eou, "raw_data_package_id": old},
    )
    (step,) = builder.build().steps
    assert set(step.index) == {
        f"executed_obs_unit_id={eou}",
        f"raw_data_package_id={old}",
        f"raw_data_package_id={new}",
    }
    assert step.values == {"raw_data_package_id": str(new)}


def test_unknown_column_is_a_programming_error() -> None:
    builder = TransactionBuilder("observatory", PRINCIPAL, now=NOW)
    with pytest.raises(ValueError, match="no columns"):
        builder.insert("executed_obs_units", {"colour": "red"})


def test_a_transaction_needs_a_step() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        TransactionBuilder("observatory", PRINCIPAL).build()


def test_only_buffered_models_can_be_written() -> None:
    with pytest.raises(KeyError, match="not a buffered model"):
        TransactionBuilder("observatory", PRINCIPAL).insert("api_tokens", {})
