"""List reads over merged data at a secondary site: records visible on the replica, applied on
main but not yet replayed (replica paused), and still buffered, with buffered updates to
records of every stage. Every page is in the documented order, every record appears exactly
once, filters select the same way on both sides and totals are exact; then the same from the
replica alone."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import (
    RAW_FILE,
    all_pages,
    apply_backlog,
    buffer_state,
    client,
    complete_package,
    in_list_order,
    ok,
    replica_paused,
    serve,
    settle,
    start_eou,
    start_transfer,
)

STAGES = ("visible", "applied", "buffered")
T0 = datetime(2026, 5, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def three_stages(
    stack: Stack, worker: SiteWorker, make: Callable[[str], Awaitable[None]]
) -> AsyncIterator[None]:
    """``make(stage)`` for each stage: the first becomes visible on the replica, the second is
    applied on main while the replica is paused, the third stays buffered. Yields with the
    replica still paused; afterwards everything is settled and read from the replica alone."""
    await make("visible")
    await settle(stack, worker)
    with replica_paused(stack):
        await make("applied")
        await apply_backlog(worker)
        await make("buffered")
        yield
    await settle(stack, worker)


async def check_list(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, Any],
    expected: dict[str, Any],
    view: Callable[[dict[str, Any]], Any],
    *,
    order: str,
    limit: int,
    fixed_order: bool = False,
) -> None:
    """Paged with ``limit``: each expected record exactly once (as ``view`` sees it), nothing
    else, the same exact total on every page, in ``order`` (asked for, unless the list has a
    ``fixed_order``)."""
    sent = params if fixed_order else {**params, "order": order}
    items, totals = await all_pages(http, path, sent, limit)
    assert totals == {len(expected)}, (sent, limit)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), (sent, limit)
    assert {i["id"]: view(i) for i in items} == expected, (sent, limit)
    assert items == in_list_order(items, order), (sent, limit)


async def test_raw_data_files_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        mine, other = [(await start_eou(http))["id"] for _ in range(2)]
        files: dict[str, dict[str, Any]] = {}  # id -> executed obs unit, package
        by_stage: dict[str, list[str]] = {}

        async def register(stage: str) -> None:
            # Paths interleave across stages, so pages ordered by path mix all three.
            body = [
                {**RAW_FILE, "name": f"{i}", "relative_path": f"{unit}/{i:02d}-{stage}.fits",
                 "size_bytes": 10 + i, "executed_obs_unit_id": unit}
                for unit, count in ((mine, 5), (other, 1))
                for i in range(STAGES.index(stage), 15, 3)[:count]
            ]  # fmt: skip
            answer = ok(await http.post("/raw_data_files/bulk", json={"files": body}), 201)
            for fid, f in zip(answer["ids"], body, strict=True):
                files[fid] = {"unit": f["executed_obs_unit_id"], "package": None}
            by_stage[stage] = answer["ids"]

        async with three_stages(stack, worker, register):
            # Pack two files of each stage and a new one: buffered updates over every stage.
            packed = [f for ids in by_stage.values() for f in ids[:2]]
            answer = ok(
                await http.post(
                    "/raw_data_package",
                    json={
                        "name": f"pk-{mine}", "executed_obs_unit_id": mine,
                        "instrument_module_id": 1, "raw_data_file_ids": packed,
                        "files": [{**RAW_FILE, "name": "new", "size_bytes": 1,
                                   "relative_path": f"{mine}/07-new.fits"}],
                    },
                ),
                201,
            )  # fmt: skip
            package, new_file = answer["id"], answer["ids"][1]
            files[new_file] = {"unit": mine, "package": None}
            for fid in [*packed, new_file]:
                files[fid]["package"] = package
            await check_files(http, files, mine, other, package)
        assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
            "overlay"
        ] == 0
        await check_files(http, files, mine, other, package)


async def check_files(
    http: httpx.AsyncClient, files: dict[str, dict[str, Any]], mine: str, other: str, package: str
) -> None:
    def view(f: dict[str, Any]) -> Any:
        return f["raw_data_package_id"]

    def of(unit: str | None, in_package: str | None = None) -> dict[str, Any]:
        return {
            f: v["package"]
            for f, v in files.items()
            if unit in (None, v["unit"]) and in_package in (None, v["package"])
        }

    assert (len(of(mine)), len(of(None, package))) == (16, 7)
    for order in ("created_at", "-created_at", "relative_path", "-relative_path"):
        await check_list(
            http, "/raw_data_files", {"executed_obs_unit_id": mine}, of(mine), view,
            order=order, limit=4,
        )  # fmt: skip
    for order in ("relative_path", "-created_at"):
        await check_list(
            http, "/raw_data_files", {"raw_data_package_id": package}, of(None, package), view,
            order=order, limit=3,
        )  # fmt: skip
    await check_list(
        http, "/raw_data_files", {"executed_obs_unit_id": mine, "raw_data_package_id": package},
        of(mine, package), view, order="-relative_path", limit=5,
    )  # fmt: skip
    await check_list(
        http, "/raw_data_files", {"executed_obs_unit_id": other}, of(other), view,
        order="relative_path", limit=2,
    )  # fmt: skip
    await check_list(
        http, "/raw_data_files", {"executed_obs_unit_id": other, "raw_data_package_id": package},
        {}, view, order="relative_path", limit=2,
    )  # fmt: skip


async def test_packages_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        mine, other = [(await start_eou(http))["id"] for _ in range(2)]
        packages: dict[str, dict[str, Any]] = {}  # id -> unit, status

        async def create(unit: str, finalize: bool) -> str:
            body = {"name": f"p-{uuid.uuid4().hex}", "executed_obs_unit_id": unit,
                    "instrument_module_id": 1}  # fmt: skip
            pid = str(ok(await http.post("/raw_data_package", json=body), 201)["id"])
            if finalize:
                ok(await http.put(f"/raw_data_package/{pid}/finalize", json={}))
            packages[pid] = {"unit": unit, "status": "complete" if finalize else "building"}
            return pid

        async def send(pid: str) -> None:
            await start_transfer(http, pid, 3)
            packages[pid]["status"] = "transferring"

        by_stage: dict[str, list[str]] = {}

        async def make(stage: str) -> None:
            made = [await create(mine, False), await create(mine, True), await create(mine, True)]
            await send(made[2])
            await create(other, True)
            by_stage[stage] = made

        async with three_stages(stack, worker, make):
            # Buffered updates over every stage: finalize the building one, send the complete.
            for building, complete, _ in by_stage.values():
                ok(await http.put(f"/raw_data_package/{building}/finalize", json={}))
                packages[building]["status"] = "complete"
                await send(complete)
            await create(mine, False)
            await check_packages(http, packages, mine, other)
        await check_packages(http, packages, mine, other)


async def check_packages(
    http: httpx.AsyncClient, packages: dict[str, dict[str, Any]], mine: str, other: str
) -> None:
    def view(p: dict[str, Any]) -> Any:
        return p["status"]

    def of(unit: str, *statuses: str) -> dict[str, Any]:
        return {
            p: v["status"]
            for p, v in packages.items()
            if v["unit"] == unit and (not statuses or v["status"] in statuses)
        }

    assert (len(of(mine)), len(of(mine, "building")), len(of(mine, "transferring"))) == (10, 1, 6)
    for order in ("-created_at", "created_at", "-updated_at", "updated_at"):
        await check_list(
            http, "/api/transfer/packages", {"executed_obs_unit_id": mine}, of(mine), view,
            order=order, limit=3,
        )  # fmt: skip
    for statuses in (["building"], ["complete"], ["complete", "transferring"], ["archived"]):
        await check_list(
            http, "/api/transfer/packages", {"executed_obs_unit_id": mine, "status": statuses},
            of(mine, *statuses), view, order="-updated_at", limit=2,
        )  # fmt: skip
    await check_list(
        http, "/api/transfer/packages", {"executed_obs_unit_id": other}, of(other), view,
        order="created_at", limit=2,
    )  # fmt: skip
    # By status alone the list spans other tests' packages too: ours each exactly once.
    moving = ok(
        await http.get("/api/transfer/packages", params={"status": "transferring", "limit": 1000})
    )
    assert moving["total"] < 1000
    ours = [p["id"] for p in moving["items"] if p["id"] in packages]
    assert sorted(ours) == sorted(of(mine, "transferring"))


async def test_physical_copies_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        site = secondary_settings.site_name
        _, mine = await complete_package(http, f"cm-{site}", sizes=(1,))
        _, other = await complete_package(http, f"co-{site}", sizes=(1,))
        copies: dict[str, dict[str, Any]] = {}  # id -> package, location, status
        by_stage: dict[str, list[str]] = {}

        async def record(package: str, location: int, stage: str) -> str:
            body = {"raw_data_package_id": package, "data_location_id": location,
                    "path": f"/copies/{stage}/{uuid.uuid4().hex}"}  # fmt: skip
            cid = str(ok(await http.post("/api/transfer/copies", json=body), 201)["id"])
            copies[cid] = {"package": package, "location": location, "status": "present"}
            return cid

        async def make(stage: str) -> None:
            by_stage[stage] = [await record(mine, 2, stage), await record(mine, 4, stage)]
            await record(other, 2, stage)

        async with three_stages(stack, worker, make):
            # A buffered update over every stage moves its record along updated_at.
            for first, _ in by_stage.values():
                ok(await http.put(f"/api/transfer/copies/{first}", json={"status": "verified"}))
                copies[first]["status"] = "verified"
            await check_copies(http, copies, mine)
        await check_copies(http, copies, mine)


async def check_copies(
    http: httpx.AsyncClient, copies: dict[str, dict[str, Any]], mine: str
) -> None:
    def view(c: dict[str, Any]) -> Any:
        return c["data_location_id"], c["status"]

    def of(location: int | None = None) -> dict[str, Any]:
        return {
            c: (v["location"], v["status"])
            for c, v in copies.items()
            if v["package"] == mine and location in (None, v["location"])
        }

    assert (len(of()), len(of(2))) == (6, 3)
    for order in ("created_at", "-created_at", "updated_at", "-updated_at"):
        await check_list(
            http, "/api/transfer/copies", {"raw_data_package_id": mine}, of(), view,
            order=order, limit=4,
        )  # fmt: skip
    for location in (2, 4, 5):
        await check_list(
            http, "/api/transfer/copies",
            {"raw_data_package_id": mine, "data_location_id": location}, of(location), view,
            order="-updated_at", limit=2,
        )  # fmt: skip
    at_buffer = ok(
        await http.get("/api/transfer/copies", params={"data_location_id": 2, "limit": 1000})
    )
    assert at_buffer["total"] < 1000
    ours = [c["id"] for c in at_buffer["items"] if c["id"] in copies]
    assert sorted(ours) == sorted(c for c, v in copies.items() if v["location"] == 2)


async def test_transfer_logs_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        _, package = await complete_package(http, f"lg-{secondary_settings.site_name}", sizes=(1,))
        transfers = [await start_transfer(http, package, route) for route in (1, 2)]
        mine, other = transfers
        logs: dict[str, str] = {}  # id -> message, of ``mine``

        async def write(transfer: str, message: str, at: datetime) -> None:
            body = {"message": message, "level": "info", "at": at.isoformat()}
            answer = ok(await http.post(f"/api/transfer/transfers/{transfer}/logs", json=body), 201)
            if transfer == mine:
                logs[answer["id"]] = message

        async def make(stage: str) -> None:
            # Times interleave across stages; one time is shared by all three (id decides).
            for i in range(STAGES.index(stage), 12, 3):
                await write(mine, f"{stage} {i}", T0 + timedelta(minutes=i))
            await write(mine, f"{stage} tie", T0 + timedelta(minutes=20))
            await write(other, f"{stage} other", T0 + timedelta(minutes=5))

        async with three_stages(stack, worker, make):
            await check_logs(http, logs, mine, other)
        await check_logs(http, logs, mine, other)


async def check_logs(http: httpx.AsyncClient, logs: dict[str, str], mine: str, other: str) -> None:
    assert len(logs) == 15
    for limit in (3, 4, 1000):
        await check_list(
            http, f"/api/transfer/transfers/{mine}/logs", {}, logs, lambda e: e["message"],
            order="logged_at", fixed_order=True, limit=limit,
        )  # fmt: skip
    theirs = ok(await http.get(f"/api/transfer/transfers/{other}/logs"))
    assert theirs["total"] == 3
    assert not {e["id"] for e in theirs["items"]} & set(logs)
