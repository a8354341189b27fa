"""Every critical write of the data-transfer area, made while main is unreachable: accepted,
read back at once alone and inside every related list (and in the transfer overview),
applied once on main, visible after replication, overlay removed; and what each transfer
does to its package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.db.models import RawDataPackageStatus, TransferStatus
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import RAW_FILE, buffer_state, client, fetch, fetchval, ok, serve, settle

# Seeded routes: to the Cologne tape archive, to Cornell (processing) via Cologne, to the
# Cologne S3 archive; with the location and base URI each ends at.
TO_ARCHIVE, TO_CORNELL, TO_S3 = 1, 2, 3
DESTINATION = {
    TO_ARCHIVE: (3, "tape://cologne/ccat"),
    TO_CORNELL: (5, "/scratch/ccat"),
    TO_S3: (4, "s3://ccat-archive"),
}
PACKAGE_SIZES = (1000, 1000, 1000)


@dataclass
class Expected:
    """What this test's records must read as, at every stage, from every read."""

    eou: str
    package: str
    package_name: str
    package_status: str
    bytes_total: int = sum(PACKAGE_SIZES)
    # id -> the transfer's view (see ``transfer_view``), in creation order.
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    copies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def started(self, transfer_id: str, route_id: int) -> None:
        self.transfers[transfer_id] = {
            "route_id": route_id, "status": "pending", "bytes_transferred": 0, "attempts": 1,
            "error": None, "started": False, "finished": False,
        }  # fmt: skip

    def moved(self, transfer_id: str, **changes: Any) -> None:
        self.transfers[transfer_id].update(changes)

    def arrived(self, transfer_id: str, copy_id: str) -> None:
        self.moved(
            transfer_id, status="completed", bytes_transferred=self.bytes_total, started=True,
            finished=True, error=None,
        )  # fmt: skip
        location, base = DESTINATION[self.transfers[transfer_id]["route_id"]]
        self.copies[copy_id] = {
            "data_location_id": location,
            "path": f"{base}/{self.package_name}",
            "status": "present",
        }


def transfer_view(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "route_id": t["route_id"],
        "status": t["status"],
        "bytes_transferred": t["bytes_transferred"],
        "attempts": t["attempts"],
        "error": t["error"],
        "started": t["started_at"] is not None,
        "finished": t["finished_at"] is not None,
    }


def copy_view(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("data_location_id", "path", "status")}


def by_id(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Rows read from main, keyed by id."""
    return {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records}


def expected_overview(baseline: dict[str, Any], x: Expected) -> dict[str, Any]:
    """The overview taken before this test's package existed, plus this test's records."""
    by_status = dict(baseline["transfers_by_status"])
    routes = {r["route_id"]: dict(r["by_status"]) for r in baseline["routes"]}
    in_flight = baseline["bytes_in_flight"]
    for t in x.transfers.values():
        by_status[t["status"]] += 1
        route = routes.setdefault(t["route_id"], {})
        route[t["status"]] = route.get(t["status"], 0) + 1
        if t["status"] == "transferring":
            in_flight += x.bytes_total - t["bytes_transferred"]
    packages = dict(baseline["packages_by_status"])
    packages[x.package_status] += 1
    return {
        "transfers_by_status": by_status,
        "packages_by_status": packages,
        "routes": [{"route_id": r, "by_status": c} for r, c in sorted(routes.items())],
        "bytes_in_flight": in_flight,
        "failed_transfers": by_status["failed"],
    }


async def check_reads(http: httpx.AsyncClient, x: Expected, baseline: dict[str, Any]) -> None:
    """Every read that should show this test's records shows each exactly once, as expected."""
    created = list(x.transfers)
    for tid, want in x.transfers.items():
        got = ok(await http.get(f"/api/transfer/transfers/{tid}"))
        assert transfer_view(got) == want, tid
        assert (got["raw_data_package_id"], got["bytes_total"]) == (x.package, x.bytes_total)
    listed = ok(
        await http.get("/api/transfer/transfers", params={"raw_data_package_id": x.package})
    )
    assert listed["total"] == len(x.transfers)
    assert [t["id"] for t in listed["items"]] == created[::-1]  # newest first
    assert {t["id"]: transfer_view(t) for t in listed["items"]} == x.transfers
    # Filtered as replica rows are: each status present, and all the absent ones at once.
    present = {t["status"] for t in x.transfers.values()}
    absent = [s.value for s in TransferStatus if s not in present]
    for statuses in [[s] for s in sorted(present)] + ([absent] if absent else []):
        listed = ok(
            await http.get(
                "/api/transfer/transfers",
                params={"raw_data_package_id": x.package, "status": statuses},
            )
        )
        want_ids = [t for t in created[::-1] if x.transfers[t]["status"] in statuses]
        assert [t["id"] for t in listed["items"]] == want_ids, statuses
        assert listed["total"] == len(want_ids), statuses
    for route in sorted({t["route_id"] for t in x.transfers.values()}):
        listed = ok(
            await http.get(
                "/api/transfer/transfers",
                params={"raw_data_package_id": x.package, "route_id": route, "order": "created_at"},
            )
        )
        want_ids = [t for t in created if x.transfers[t]["route_id"] == route]
        assert [t["id"] for t in listed["items"]] == want_ids, route

    package = ok(await http.get(f"/raw_data_package/{x.package}"))
    assert (package["status"], package["total_size_bytes"]) == (x.package_status, x.bytes_total)
    others = [s.value for s in RawDataPackageStatus if s != x.package_status]
    for statuses, want_ids in (([x.package_status], [x.package]), (others, [])):
        listed = ok(
            await http.get(
                "/api/transfer/packages", params={"executed_obs_unit_id": x.eou, "status": statuses}
            )
        )
        assert [p["id"] for p in listed["items"]] == want_ids, statuses
        assert listed["total"] == len(want_ids), statuses
    details = ok(await http.get(f"/executed_obs_units/{x.eou}/details"))
    (in_details,) = details["packages"]
    assert (in_details["id"], in_details["status"]) == (x.package, x.package_status)
    assert [t["id"] for t in in_details["transfers"]] == created  # oldest first
    assert {t["id"]: transfer_view(t) for t in in_details["transfers"]} == x.transfers

    for tid in x.transfers:
        logs = ok(await http.get(f"/api/transfer/transfers/{tid}/logs"))
        assert [(e["level"], e["message"]) for e in logs["items"]] == x.logs.get(tid, []), tid
        assert logs["total"] == len(x.logs.get(tid, [])), tid

    copies = ok(await http.get("/api/transfer/copies", params={"raw_data_package_id": x.package}))
    assert [c["id"] for c in copies["items"]] == list(x.copies)  # oldest first
    assert {c["id"]: copy_view(c) for c in copies["items"]} == x.copies
    assert copies["total"] == len(x.copies)
    for cid, want in x.copies.items():
        assert copy_view(ok(await http.get(f"/api/transfer/copies/{cid}"))) == want, cid
    for location in sorted({c["data_location_id"] for c in x.copies.values()}):
        at_location = ok(
            await http.get(
                "/api/transfer/copies",
                params={"raw_data_package_id": x.package, "data_location_id": location},
            )
        )
        want_ids = [c for c, v in x.copies.items() if v["data_location_id"] == location]
        assert [c["id"] for c in at_location["items"]] == want_ids, location

    assert ok(await http.get("/api/transfer/overview")) == expected_overview(baseline, x)


async def test_every_transfer_write_is_buffered_read_back_at_once_and_applied_once(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    name = f"pkg-{site}"
    stack.wait_replica_caught_up()
    async with serve(secondary_settings) as url, client(url, tokens.service, timeout_s=5) as http:
        baseline = ok(await http.get("/api/transfer/overview"))
        stack.wan.down()
        tx_ids: list[str] = []

        async def write(
            method: str, path: str, body: dict[str, Any] | None = None, status: int = 200
        ) -> dict[str, Any]:
            answer: dict[str, Any] = ok(await http.request(method, path, json=body), status)
            assert answer["status"] == "buffered", answer
            tx_ids.append(answer["tx_id"])
            return answer

        eou = (await write("POST", "/executed_obs_units/start", {"obs_unit_id": 1}, 201))["id"]
        package = (
            await write(
                "POST",
                "/raw_data_package",
                {
                    "name": name, "executed_obs_unit_id": eou, "instrument_module_id": 1,
                    "files": [{**RAW_FILE, "name": f"f{i}", "relative_path": f"{name}/f{i}.fits",
                               "size_bytes": size} for i, size in enumerate(PACKAGE_SIZES)],
                },
                201,
            )
        )["id"]  # fmt: skip
        x = Expected(eou=eou, package=package, package_name=name, package_status="building")
        await check_reads(http, x, baseline)
        await write("PUT", f"/raw_data_package/{package}/finalize", {"checksum": "md5:feedfeed"})
        x.package_status = "complete"
        await check_reads(http, x, baseline)

        async def start(route_id: int) -> str:
            body = {"raw_data_package_id": package, "route_id": route_id}
            answer = await write("POST", "/api/transfer/transfers", body, 201)
            assert answer["ids"] == [answer["id"]]
            x.started(answer["id"], route_id)
            return str(answer["id"])

        async def move(transfer_id: str, body: dict[str, Any]) -> list[str]:
            answer = await write("PUT", f"/api/transfer/transfers/{transfer_id}", body)
            assert answer["id"] == transfer_id
            return list(answer["ids"])

        # Starting a transfer of a complete package marks it transferring.
        t1 = await start(TO_ARCHIVE)
        x.package_status = "transferring"
        await check_reads(http, x, baseline)
        t2 = await start(TO_CORNELL)
        await check_reads(http, x, baseline)
        # One of two active transfers failing leaves the package transferring...
        await move(t2, {"status": "failed", "error": "relay disk full"})
        x.moved(t2, status="failed", error="relay disk full", started=True, finished=True)
        await check_reads(http, x, baseline)
        # ... the last one failing marks it failed.
        await move(t1, {"status": "failed", "error": "link dropped"})
        x.moved(t1, status="failed", error="link dropped", started=True, finished=True)
        x.package_status = "failed"
        await check_reads(http, x, baseline)
        # A failed package can start a new transfer, and fails again with it.
        t3 = await start(TO_S3)
        x.package_status = "transferring"
        await check_reads(http, x, baseline)
        await move(t3, {"status": "failed", "error": "bucket quota"})
        x.moved(t3, status="failed", error="bucket quota", started=True, finished=True)
        x.package_status = "failed"
        await check_reads(http, x, baseline)
        # Resetting a transfer of a failed package makes it transferring again.
        assert (await write("POST", f"/api/transfer/transfers/{t1}/reset"))["id"] == t1
        x.moved(t1, status="pending", attempts=2, error=None, started=False, finished=False)
        x.package_status = "transferring"
        await check_reads(http, x, baseline)
        await move(t1, {"status": "transferring", "bytes_transferred": 1000})
        x.moved(t1, status="transferring", bytes_transferred=1000, started=True)
        await check_reads(http, x, baseline)  # 2000 bytes in flight
        await write("POST", f"/api/transfer/transfers/{t1}/logs", {"message": "bbcp started"}, 201)
        x.logs[t1] = [("info", "bbcp started")]
        await check_reads(http, x, baseline)
        await move(t1, {"status": "transferring", "bytes_transferred": 2500})
        x.moved(t1, bytes_transferred=2500)
        await check_reads(http, x, baseline)
        # Arriving in a long-term archive records the copy and archives the package.
        (archive_copy,) = await move(t1, {"status": "completed"})
        x.arrived(t1, archive_copy)
        x.package_status = "archived"
        await check_reads(http, x, baseline)
        await write(
            "POST",
            f"/api/transfer/transfers/{t1}/logs",
            {"level": "warning", "message": "checksum verified late"},
            201,
        )
        x.logs[t1].append(("warning", "checksum verified late"))
        await check_reads(http, x, baseline)
        # An archived package stays archived while it is sent on, reset, failed or delivered.
        await write("POST", f"/api/transfer/transfers/{t2}/reset")
        x.moved(t2, status="pending", attempts=2, error=None, started=False, finished=False)
        await check_reads(http, x, baseline)
        await move(t2, {"status": "transferring"})
        x.moved(t2, status="transferring", started=True)
        await check_reads(http, x, baseline)  # 3000 bytes in flight
        (processing_copy,) = await move(t2, {"status": "completed"})
        x.arrived(t2, processing_copy)
        await check_reads(http, x, baseline)
        t4 = await start(TO_S3)
        await check_reads(http, x, baseline)
        await move(t4, {"status": "failed", "error": "s3 timeout"})
        x.moved(t4, status="failed", error="s3 timeout", started=True, finished=True)
        await check_reads(http, x, baseline)
        # Physical copies: one changed, one recorded by hand.
        answer = await write("PUT", f"/api/transfer/copies/{archive_copy}", {"status": "verified"})
        assert (answer["id"], answer["ids"]) == (archive_copy, [])
        x.copies[archive_copy]["status"] = "verified"
        await check_reads(http, x, baseline)
        own = await write(
            "POST",
            "/api/transfer/copies",
            {"raw_data_package_id": package, "data_location_id": 2, "path": f"/data/buffer/{name}"},
            201,
        )
        x.copies[own["id"]] = {"data_location_id": 2, "path": f"/data/buffer/{name}",
                               "status": "present"}  # fmt: skip
        await check_reads(http, x, baseline)

        # Nothing of it has reached main.
        dsn = stack.main_db.dsn()
        assert (
            await fetchval(dsn, "SELECT count(*) FROM applied_transactions WHERE site = $1", site)
            == 0
        )

        stack.wan.up()
        await settle(stack, worker)
        state = await buffer_state(secondary_settings.redis_url, site)
        assert (state["overlay"], state["stream"], state["dead"]) == (0, 0, 0)
        for tx_id in tx_ids:
            assert ok(await http.get(f"/transactions/{tx_id}"))["state"] == "visible", tx_id
        await check_reads(http, x, baseline)  # now from the replica alone

    applied = await fetchval(
        dsn,
        "SELECT array_agg(tx_id::text ORDER BY seq) FROM applied_transactions WHERE site = $1",
        site,
    )
    assert applied == tx_ids
    on_main = await fetch(
        dsn,
        "SELECT id::text, route_id, status, bytes_transferred, attempts, error,"
        " started_at IS NOT NULL AS started, finished_at IS NOT NULL AS finished"
        " FROM data_transfers WHERE raw_data_package_id = $1::uuid",
        package,
    )
    assert by_id(on_main) == x.transfers
    assert (
        await fetchval(dsn, "SELECT status FROM raw_data_packages WHERE id = $1::uuid", package)
        == "archived"
    )
    copies = await fetch(
        dsn,
        "SELECT id::text, data_location_id, path, status FROM physical_copies"
        " WHERE raw_data_package_id = $1::uuid",
        package,
    )
    assert by_id(copies) == x.copies
    logs = await fetch(
        dsn,
        "SELECT level, message FROM data_transfer_logs WHERE data_transfer_id = $1::uuid"
        " ORDER BY logged_at",
        t1,
    )
    assert [(r["level"], r["message"]) for r in logs] == x.logs[t1]
