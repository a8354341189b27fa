"""The critical writes both clients offer: what the observatory records while it observes.

Each builds a keyed ``Call`` (see ``call.write_call``). Bodies may be given as the model or
as a mapping, which is validated here (a ``pydantic.ValidationError`` names the field before
anything is sent); fields left unset are left to the server's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from ccat_api.client.call import Call, Id, path_id, write_call
from ccat_api.client.methods import operation
from ccat_api.client.models import (
    ExecutedObsUnitFinish,
    ExecutedObsUnitStart,
    PhysicalCopyCreate,
    PhysicalCopyUpdate,
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    TransferCreate,
    TransferLogCreate,
    TransferUpdate,
    WriteResult,
)

M = TypeVar("M", bound=BaseModel)
Body = Mapping[str, Any]
TRANSFERS = "/api/transfer/transfers"
COPIES = "/api/transfer/copies"


def _dump(model: type[M], value: M | Body) -> dict[str, Any]:
    validated = value if isinstance(value, model) else model.model_validate(value)
    return validated.model_dump(mode="json", exclude_unset=True)


class CriticalWrites:
    """Writes take ``idempotency_key`` (default: a fresh UUID per call, the same on each of
    its retries) and answer a ``WriteResult``."""

    @operation
    def start_executed_obs_unit(
        body: ExecutedObsUnitStart | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /executed_obs_units/start: an observation begins (201)."""
        return write_call(
            "POST",
            "/executed_obs_units/start",
            _dump(ExecutedObsUnitStart, body),
            idempotency_key,
            stamp="start_time",
        )

    @operation
    def finish_executed_obs_unit(
        executed_obs_unit_id: Id,
        body: ExecutedObsUnitFinish | Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[WriteResult]:
        """PUT /executed_obs_units/{id}/finish: success unless ``body`` says otherwise."""
        return write_call(
            "PUT",
            f"/executed_obs_units/{path_id(executed_obs_unit_id)}/finish",
            _dump(ExecutedObsUnitFinish, body or {}),
            idempotency_key,
            stamp="end_time",
        )

    @operation
    def register_file(
        body: RawDataFileCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /raw_data_files: one raw data file (201)."""
        return write_call(
            "POST", "/raw_data_files", _dump(RawDataFileCreate, body), idempotency_key
        )

    @operation
    def register_files(
        files: Sequence[RawDataFileCreate | Body], *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /raw_data_files/bulk: up to 1000 files in one transaction; ``ids`` in order."""
        return write_call(
            "POST",
            "/raw_data_files/bulk",
            _dump(RawDataFileBulkCreate, {"files": list(files)}),
            idempotency_key,
        )

    @operation
    def create_package(
        body: RawDataPackageCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /raw_data_package: pack existing files (``raw_data_file_ids``) and/or new ones
        (``files``) in one transaction."""
        return write_call(
            "POST", "/raw_data_package", _dump(RawDataPackageCreate, body), idempotency_key
        )

    @operation
    def finalize_package(
        package_id: Id, *, checksum: str | None = None, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /raw_data_package/{id}/finalize: building -> complete (counts are computed)."""
        body = {} if checksum is None else {"checksum": checksum}
        return write_call(
            "PUT",
            f"/raw_data_package/{path_id(package_id)}/finalize",
            _dump(RawDataPackageFinalize, body),
            idempotency_key,
        )

    @operation
    def start_transfer(
        body: TransferCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/transfers: ship a complete package along a route (201)."""
        return write_call("POST", TRANSFERS, _dump(TransferCreate, body), idempotency_key)

    @operation
    def update_transfer(
        transfer_id: Id, body: TransferUpdate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /api/transfer/transfers/{id}: progress, completion or failure."""
        return write_call(
            "PUT",
            f"{TRANSFERS}/{path_id(transfer_id)}",
            _dump(TransferUpdate, body),
            idempotency_key,
            stamp="at",
        )

    @operation
    def log_transfer(
        transfer_id: Id, body: TransferLogCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/transfers/{id}/logs: one line of the transfer's log (201)."""
        return write_call(
            "POST",
            f"{TRANSFERS}/{path_id(transfer_id)}/logs",
            _dump(TransferLogCreate, body),
            idempotency_key,
            stamp="at",
        )

    @operation
    def reset_transfer(transfer_id: Id, *, idempotency_key: str | None = None) -> Call[WriteResult]:
        """POST /api/transfer/transfers/{id}/reset: failed -> pending, for another attempt."""
        return write_call(
            "POST", f"{TRANSFERS}/{path_id(transfer_id)}/reset", None, idempotency_key
        )

    @operation
    def add_copy(
        body: PhysicalCopyCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/copies: a physical copy of a package at a data location (201);
        it starts ``present``."""
        return write_call("POST", COPIES, _dump(PhysicalCopyCreate, body), idempotency_key)

    @operation
    def update_copy(
        copy_id: Id, body: PhysicalCopyUpdate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /api/transfer/copies/{id}: verified, corrupt or deleted (a deleted copy stays
        deleted: anything else is a 409)."""
        return write_call(
            "PUT", f"{COPIES}/{path_id(copy_id)}", _dump(PhysicalCopyUpdate, body), idempotency_key
        )
