"""The transfer overview: transfers by status and route, packages by status and the bytes in
flight, counted over merged data (the replica and the buffer), so a buffered transfer counts
at once. The REST route and the overview stream both answer it."""

from __future__ import annotations

from ccat_api.buffering.query import Eq
from ccat_api.buffering.reads import MergedReader
from ccat_api.db.models import RawDataPackageStatus, TransferStatus
from ccat_api.schemas.transfers import Overview, RouteCounts


async def transfer_overview(reader: MergedReader) -> Overview:
    by_route = await reader.count_by("data_transfers", ["route_id", "status"])
    transfers_by_status = {s.value: 0 for s in TransferStatus}
    routes: dict[int, dict[str, int]] = {}
    for (route_id, status), count in by_route.items():
        transfers_by_status[status] = transfers_by_status.get(status, 0) + count
        routes.setdefault(route_id, {})[status] = count
    packages = await reader.count_by("raw_data_packages", ["status"])
    in_flight = await reader.sums(
        "data_transfers",
        ["bytes_total", "bytes_transferred"],
        [Eq("status", TransferStatus.TRANSFERRING.value)],
    )
    return Overview(
        transfers_by_status=transfers_by_status,
        packages_by_status={
            **{s.value: 0 for s in RawDataPackageStatus},
            **{status: count for (status,), count in packages.items()},
        },
        routes=[RouteCounts(route_id=r, by_status=c) for r, c in sorted(routes.items())],
        bytes_in_flight=in_flight["bytes_total"] - in_flight["bytes_transferred"],
        failed_transfers=transfers_by_status.get(TransferStatus.FAILED.value, 0),
    )
