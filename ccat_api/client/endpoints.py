"""Every operation of the SDK, declared once: the path, the body model, the answer model.

``Client`` and ``AsyncClient`` both inherit these; see ``ccat_api.client.call`` for how one
declaration becomes a method of each. Bodies may be given as the model or as a mapping,
which is validated here (a ``pydantic.ValidationError`` names the field before anything is
sent); fields left unset are left to the server's defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

from ccat_api.client.call import Call, operation
from ccat_api.client.models import (
    BufferStats,
    ExecutedObsUnitDetails,
    ExecutedObsUnitFinish,
    ExecutedObsUnitRead,
    ExecutedObsUnitStart,
    Health,
    PackageStatus,
    Page,
    PhysicalCopyCreate,
    PhysicalCopyRead,
    PhysicalCopyUpdate,
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    RawDataPackageRead,
    RawDataPackageWithFiles,
    RetryResult,
    SiteInfo,
    TransactionState,
    TransferCreate,
    TransferLogCreate,
    TransferLogRead,
    TransferOverview,
    TransferRead,
    TransferStatus,
    TransferUpdate,
    WriteResult,
)
from ccat_api.live.models import SiteStatus

M = TypeVar("M", bound=BaseModel)
Id = UUID | str
Body = Mapping[str, Any]
TRANSFERS = "/api/transfer/transfers"
COPIES = "/api/transfer/copies"
ChangeOrder = Literal["created_at", "-created_at", "updated_at", "-updated_at"]


def _id(value: Id) -> str:
    """Path ids are parsed here: a malformed one fails locally, never as a strange URL."""
    return str(value if isinstance(value, UUID) else UUID(str(value)))


def _optional_id(value: Id | None) -> str | None:
    return None if value is None else _id(value)


S = TypeVar("S", bound=str)


def _statuses(value: S | Sequence[S] | None) -> list[S] | None:
    """One status or several (sent as a repeated ``status`` parameter)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _dump(model: type[M], value: M | Body) -> dict[str, Any]:
    validated = value if isinstance(value, model) else model.model_validate(value)
    return validated.model_dump(mode="json", exclude_unset=True)


def _write(
    method: str, path: str, body: dict[str, Any] | None, idempotency_key: str | None
) -> Call[WriteResult]:
    key = str(uuid.uuid4()) if idempotency_key is None else idempotency_key

    def parse(response: httpx.Response, attempts: int) -> WriteResult:
        return WriteResult.model_validate(
            {
                **response.json(),
                "http_status": response.status_code,
                "attempts": attempts,
                "idempotency_key": key,
            }
        )

    return Call(method, path, parse, json=body, idempotency_key=key)


def _read(path: str, model: type[M], **params: Any) -> Call[M]:
    def parse(response: httpx.Response, _: int) -> M:
        return model.model_validate(response.json())

    return Call("GET", path, parse, params=params)


class Endpoints:
    """The operations both clients offer. Writes take ``idempotency_key`` (default: a fresh
    UUID per call, the same on each of its retries) and answer a ``WriteResult``.

    The builders take no ``self``: they only describe a request, and ``@operation`` turns
    each into a method of the client that reads it."""

    # --- critical writes -------------------------------------------------------------------

    @operation
    def start_executed_obs_unit(
        body: ExecutedObsUnitStart | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /executed_obs_units/start: an observation begins (201)."""
        return _write(
            "POST",
            "/executed_obs_units/start",
            _dump(ExecutedObsUnitStart, body),
            idempotency_key,
        )

    @operation
    def finish_executed_obs_unit(
        executed_obs_unit_id: Id,
        body: ExecutedObsUnitFinish | Body | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[WriteResult]:
        """PUT /executed_obs_units/{id}/finish: success unless ``body`` says otherwise."""
        return _write(
            "PUT",
            f"/executed_obs_units/{_id(executed_obs_unit_id)}/finish",
            _dump(ExecutedObsUnitFinish, body or {}),
            idempotency_key,
        )

    @operation
    def register_file(
        body: RawDataFileCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /raw_data_files: one raw data file (201)."""
        return _write("POST", "/raw_data_files", _dump(RawDataFileCreate, body), idempotency_key)

    @operation
    def register_files(
        files: Sequence[RawDataFileCreate | Body], *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /raw_data_files/bulk: up to 1000 files in one transaction; ``ids`` in order."""
        return _write(
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
        return _write(
            "POST", "/raw_data_package", _dump(RawDataPackageCreate, body), idempotency_key
        )

    @operation
    def finalize_package(
        package_id: Id, *, checksum: str | None = None, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /raw_data_package/{id}/finalize: building -> complete (counts are computed)."""
        body = {} if checksum is None else {"checksum": checksum}
        return _write(
            "PUT",
            f"/raw_data_package/{_id(package_id)}/finalize",
            _dump(RawDataPackageFinalize, body),
            idempotency_key,
        )

    @operation
    def start_transfer(
        body: TransferCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/transfers: ship a complete package along a route (201)."""
        return _write("POST", TRANSFERS, _dump(TransferCreate, body), idempotency_key)

    @operation
    def update_transfer(
        transfer_id: Id, body: TransferUpdate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /api/transfer/transfers/{id}: progress, completion or failure."""
        return _write(
            "PUT", f"{TRANSFERS}/{_id(transfer_id)}", _dump(TransferUpdate, body), idempotency_key
        )

    @operation
    def log_transfer(
        transfer_id: Id, body: TransferLogCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/transfers/{id}/logs: one line of the transfer's log (201)."""
        return _write(
            "POST",
            f"{TRANSFERS}/{_id(transfer_id)}/logs",
            _dump(TransferLogCreate, body),
            idempotency_key,
        )

    @operation
    def reset_transfer(transfer_id: Id, *, idempotency_key: str | None = None) -> Call[WriteResult]:
        """POST /api/transfer/transfers/{id}/reset: failed -> pending, for another attempt."""
        return _write("POST", f"{TRANSFERS}/{_id(transfer_id)}/reset", None, idempotency_key)

    @operation
    def add_copy(
        body: PhysicalCopyCreate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """POST /api/transfer/copies: a physical copy of a package at a data location (201);
        it starts ``present``."""
        return _write("POST", COPIES, _dump(PhysicalCopyCreate, body), idempotency_key)

    @operation
    def update_copy(
        copy_id: Id, body: PhysicalCopyUpdate | Body, *, idempotency_key: str | None = None
    ) -> Call[WriteResult]:
        """PUT /api/transfer/copies/{id}: verified, corrupt or deleted (a deleted copy stays
        deleted: anything else is a 409)."""
        return _write(
            "PUT", f"{COPIES}/{_id(copy_id)}", _dump(PhysicalCopyUpdate, body), idempotency_key
        )

    # --- reads (at a secondary site: the local replica merged with the buffer) -------------

    @operation
    def get_executed_obs_unit(executed_obs_unit_id: Id) -> Call[ExecutedObsUnitRead]:
        return _read(f"/executed_obs_units/{_id(executed_obs_unit_id)}", ExecutedObsUnitRead)

    @operation
    def list_executed_obs_units(
        *,
        obs_unit_id: int | None = None,
        status: Literal["running", "success", "failed", "interrupted"] | None = None,
        order: Literal["start_time", "-start_time", "created_at", "-created_at"] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[ExecutedObsUnitRead]]:
        return _read(
            "/executed_obs_units",
            Page[ExecutedObsUnitRead],
            obs_unit_id=obs_unit_id, status=status, order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_executed_obs_unit_details(executed_obs_unit_id: Id) -> Call[ExecutedObsUnitDetails]:
        """The unit with its packages (their files and transfers) and unpackaged files."""
        return _read(
            f"/executed_obs_units/{_id(executed_obs_unit_id)}/details", ExecutedObsUnitDetails
        )

    @operation
    def list_raw_data_files(
        *,
        executed_obs_unit_id: Id | None = None,
        raw_data_package_id: Id | None = None,
        order: Literal["created_at", "-created_at", "relative_path", "-relative_path"]
        | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[RawDataFileRead]]:
        """Needs one of the two filters (the server answers 422 otherwise)."""
        return _read(
            "/raw_data_files",
            Page[RawDataFileRead],
            executed_obs_unit_id=_optional_id(executed_obs_unit_id),
            raw_data_package_id=_optional_id(raw_data_package_id),
            order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_raw_data_file(file_id: Id) -> Call[RawDataFileRead]:
        return _read(f"/raw_data_files/{_id(file_id)}", RawDataFileRead)

    @operation
    def get_raw_data_package(package_id: Id) -> Call[RawDataPackageWithFiles]:
        return _read(f"/raw_data_package/{_id(package_id)}", RawDataPackageWithFiles)

    @operation
    def list_packages(
        *,
        status: PackageStatus | Sequence[PackageStatus] | None = None,
        executed_obs_unit_id: Id | None = None,
        order: ChangeOrder | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[RawDataPackageRead]]:
        """Raw data packages, newest first unless ``order`` says otherwise; ``status`` may
        name several."""
        return _read(
            "/api/transfer/packages",
            Page[RawDataPackageRead],
            status=_statuses(status),
            executed_obs_unit_id=_optional_id(executed_obs_unit_id),
            order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_transfer(transfer_id: Id) -> Call[TransferRead]:
        return _read(f"{TRANSFERS}/{_id(transfer_id)}", TransferRead)

    @operation
    def list_transfers(
        *,
        status: TransferStatus | Sequence[TransferStatus] | None = None,
        raw_data_package_id: Id | None = None,
        route_id: int | None = None,
        order: ChangeOrder | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[TransferRead]]:
        """Transfers, newest first unless ``order`` says otherwise; ``status`` may name
        several."""
        return _read(
            TRANSFERS,
            Page[TransferRead],
            status=_statuses(status),
            raw_data_package_id=_optional_id(raw_data_package_id),
            route_id=route_id, order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def list_transfer_logs(
        transfer_id: Id, *, limit: int | None = None, offset: int | None = None
    ) -> Call[Page[TransferLogRead]]:
        """A transfer's log lines, oldest first, including those still buffered here."""
        return _read(
            f"{TRANSFERS}/{_id(transfer_id)}/logs",
            Page[TransferLogRead],
            limit=limit,
            offset=offset,
        )

    @operation
    def get_copy(copy_id: Id) -> Call[PhysicalCopyRead]:
        return _read(f"{COPIES}/{_id(copy_id)}", PhysicalCopyRead)

    @operation
    def list_copies(
        *,
        raw_data_package_id: Id | None = None,
        data_location_id: int | None = None,
        order: ChangeOrder | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[PhysicalCopyRead]]:
        """Physical copies of a package or at a location, oldest first unless ``order`` says
        otherwise."""
        return _read(
            COPIES,
            Page[PhysicalCopyRead],
            raw_data_package_id=_optional_id(raw_data_package_id),
            data_location_id=data_location_id, order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def transfer_overview() -> Call[TransferOverview]:
        return _read("/api/transfer/overview", TransferOverview)

    # --- operations ------------------------------------------------------------------------

    @operation
    def get_transaction(tx_id: Id) -> Call[TransactionState]:
        """A transaction's state: buffered, applied, visible, failed or discarded."""
        return _read(f"/transactions/{_id(tx_id)}", TransactionState)

    @operation
    def list_transactions(
        *,
        state: Literal["buffered", "applied", "visible", "failed", "discarded"] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[TransactionState]]:
        """This site's transactions, newest first (a secondary site only)."""
        return _read(
            "/transactions", Page[TransactionState], state=state, limit=limit, offset=offset
        )

    @operation
    def list_dead_letters(
        *, limit: int | None = None, offset: int | None = None
    ) -> Call[Page[TransactionState]]:
        """Transactions that failed permanently on main (GET /transactions?state=failed)."""
        return _read(
            "/transactions", Page[TransactionState], state="failed", limit=limit, offset=offset
        )

    @operation
    def retry_transaction(tx_id: Id) -> Call[RetryResult]:
        """Re-buffer a dead letter and the dead letters depending on it (admin)."""

        def parse(response: httpx.Response, _: int) -> RetryResult:
            return RetryResult.model_validate(response.json())

        # No Idempotency-Key on this route: only sent again when it cannot have arrived.
        return Call("POST", f"/transactions/{_id(tx_id)}/retry", parse, replay_safe=False)

    @operation
    def discard_transaction(tx_id: Id) -> Call[None]:
        """Give up on a dead letter for good (admin)."""

        def parse(_: httpx.Response, __: int) -> None:
            return None

        return Call("POST", f"/transactions/{_id(tx_id)}/discard", parse, replay_safe=False)

    @operation
    def buffer_stats() -> Call[BufferStats]:
        return _read("/buffer-stats", BufferStats)

    @operation
    def site_info() -> Call[SiteInfo]:
        return _read("/api/site/info", SiteInfo)

    @operation
    def site_status() -> Call[SiteStatus]:
        """Buffer depth and age, rates, estimated drain, replica lag, processor (read:buffer)."""
        return _read("/api/site/status", SiteStatus)

    @operation
    def health() -> Call[Health]:
        """Reachability of main, replica and Redis, and the buffer. A 503 here is an answer
        (``ok`` false), not retried."""

        def parse(response: httpx.Response, _: int) -> Health:
            return Health(ok=response.is_success, report=response.json())

        return Call("GET", "/health", parse, answers=frozenset({503}))
