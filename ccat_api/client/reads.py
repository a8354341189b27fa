"""The reads both clients offer: the records the critical writes made, and the transfer
overview. At a secondary site they are the local replica merged with the buffer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

from ccat_api.client.call import Call, Id, path_id, read_call
from ccat_api.client.methods import operation
from ccat_api.client.models import (
    ExecutedObsUnitDetails,
    ExecutedObsUnitRead,
    PackageStatus,
    Page,
    PhysicalCopyRead,
    RawDataFileRead,
    RawDataPackageRead,
    RawDataPackageWithFiles,
    TransferLogRead,
    TransferOverview,
    TransferRead,
    TransferStatus,
)
from ccat_api.client.writes import COPIES, TRANSFERS

S = TypeVar("S", bound=str)
ChangeOrder = Literal["created_at", "-created_at", "updated_at", "-updated_at"]


def _optional_id(value: Id | None) -> str | None:
    return None if value is None else path_id(value)


def _statuses(value: S | Sequence[S] | None) -> list[S] | None:
    """One status or several (sent as a repeated ``status`` parameter)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class Reads:
    """Lists answer a ``Page``; a filter left out is not sent."""

    @operation
    def get_executed_obs_unit(executed_obs_unit_id: Id) -> Call[ExecutedObsUnitRead]:
        return read_call(
            f"/executed_obs_units/{path_id(executed_obs_unit_id)}", ExecutedObsUnitRead
        )

    @operation
    def list_executed_obs_units(
        *,
        obs_unit_id: int | None = None,
        status: Literal["running", "success", "failed", "interrupted"] | None = None,
        order: Literal["start_time", "-start_time", "created_at", "-created_at"] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[ExecutedObsUnitRead]]:
        return read_call(
            "/executed_obs_units",
            Page[ExecutedObsUnitRead],
            obs_unit_id=obs_unit_id, status=status, order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_executed_obs_unit_details(executed_obs_unit_id: Id) -> Call[ExecutedObsUnitDetails]:
        """The unit with its packages (their files and transfers) and unpackaged files."""
        return read_call(
            f"/executed_obs_units/{path_id(executed_obs_unit_id)}/details", ExecutedObsUnitDetails
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
        return read_call(
            "/raw_data_files",
            Page[RawDataFileRead],
            executed_obs_unit_id=_optional_id(executed_obs_unit_id),
            raw_data_package_id=_optional_id(raw_data_package_id),
            order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_raw_data_file(file_id: Id) -> Call[RawDataFileRead]:
        return read_call(f"/raw_data_files/{path_id(file_id)}", RawDataFileRead)

    @operation
    def get_raw_data_package(package_id: Id) -> Call[RawDataPackageWithFiles]:
        return read_call(f"/raw_data_package/{path_id(package_id)}", RawDataPackageWithFiles)

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
        return read_call(
            "/api/transfer/packages",
            Page[RawDataPackageRead],
            status=_statuses(status),
            executed_obs_unit_id=_optional_id(executed_obs_unit_id),
            order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def get_transfer(transfer_id: Id) -> Call[TransferRead]:
        return read_call(f"{TRANSFERS}/{path_id(transfer_id)}", TransferRead)

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
        return read_call(
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
        return read_call(
            f"{TRANSFERS}/{path_id(transfer_id)}/logs",
            Page[TransferLogRead],
            limit=limit,
            offset=offset,
        )

    @operation
    def get_copy(copy_id: Id) -> Call[PhysicalCopyRead]:
        return read_call(f"{COPIES}/{path_id(copy_id)}", PhysicalCopyRead)

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
        return read_call(
            COPIES,
            Page[PhysicalCopyRead],
            raw_data_package_id=_optional_id(raw_data_package_id),
            data_location_id=data_location_id, order=order, limit=limit, offset=offset,
        )  # fmt: skip

    @operation
    def transfer_overview() -> Call[TransferOverview]:
        return read_call("/api/transfer/overview", TransferOverview)
