"""Every critical write of the observations and raw-data areas, made while main is
unreachable: accepted, read back at once alone and inside every related list, applied once on
main, visible after replication, overlay removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.db.models import ExecutedObsUnitStatus, RawDataPackageStatus
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import (
    RAW_FILE,
    buffer_state,
    client,
    fetchval,
    in_list_order,
    ok,
    serve,
    settle,
)

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=42)


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass
class Expected:
    """What this test's records must read as, at every stage, from every read."""

    eou: str
    obs_unit_id: int
    unit: dict[str, Any]
    # id -> (relative_path, size_bytes, raw_data_package_id), in creation order.
    files: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)
    # id -> (status, file_count, total_size_bytes, checksum), in creation order. While a
    # package is building its counts are those it was created with; files added to it later
    # are counted when it is finalized, so they are not checked (None) until then.
    packages: dict[str, tuple[str, int | None, int | None, str | None]] = field(
        default_factory=dict
    )

    def files_of(self, package: str | None) -> list[str]:
        return [f for f, (_, _, p) in self.files.items() if p == package]

    def paths_of(self, package: str | None) -> list[str]:
        return sorted(path for path, _, p in self.files.values() if p == package)


def unit_view(u: dict[str, Any]) -> dict[str, Any]:
    return {
        "obs_unit_id": u["obs_unit_id"],
        "instrument_module_id": u["instrument_module_id"],
        "status": u["status"],
        "start_time": at(u["start_time"]),
        "end_time": at(u["end_time"]),
        "mean_pwv_mm": u["mean_pwv_mm"],
        "conditions": u["conditions"],
    }


def file_view(f: dict[str, Any]) -> tuple[str, int, str | None]:
    return f["relative_path"], f["size_bytes"], f["raw_data_package_id"]


def check_package(got: dict[str, Any], x: Expected, pid: str) -> None:
    status, count, size, checksum = x.packages[pid]
    assert (got["id"], got["executed_obs_unit_id"]) == (pid, x.eou)
    assert (got["status"], got["checksum"]) == (status, checksum), pid
    if count is not None:
        assert (got["file_count"], got["total_size_bytes"]) == (count, size), pid


async def check_reads(http: httpx.AsyncClient, x: Expected) -> None:
    """Every read that should show this test's records shows each exactly once, as expected."""
    got = ok(await http.get(f"/executed_obs_units/{x.eou}"))
    assert (got["id"], unit_view(got)) == (x.eou, x.unit)
    for status in ExecutedObsUnitStatus:
        listed = ok(
            await http.get(
                "/executed_obs_units", params={"obs_unit_id": x.obs_unit_id, "status": status}
            )
        )
        want_ids = [x.eou] if status == x.unit["status"] else []
        assert [u["id"] for u in listed["items"]] == want_ids, status
        assert listed["total"] == len(want_ids), status
    listed = ok(await http.get("/executed_obs_units", params={"obs_unit_id": x.obs_unit_id}))
    assert listed["total"] == 1
    (in_list,) = listed["items"]
    assert unit_view(in_list) == x.unit

    files = ok(
        await http.get("/raw_data_files", params={"executed_obs_unit_id": x.eou, "limit": 1000})
    )
    assert files["total"] == len(x.files)
    assert {f["id"]: file_view(f) for f in files["items"]} == x.files
    assert files["items"] == in_list_order(files["items"], "created_at")
    for pid in x.packages:
        in_package = ok(await http.get("/raw_data_files", params={"raw_data_package_id": pid}))
        assert sorted(f["id"] for f in in_package["items"]) == sorted(x.files_of(pid)), pid
        assert in_package["total"] == len(x.files_of(pid)), pid
    for fid, want in x.files.items():
        assert file_view(ok(await http.get(f"/raw_data_files/{fid}"))) == want, fid

    created = list(x.packages)
    for pid in created:
        package = ok(await http.get(f"/raw_data_package/{pid}"))
        check_package(package, x, pid)
        assert [f["relative_path"] for f in package["files"]] == x.paths_of(pid), pid
    listed = ok(await http.get("/api/transfer/packages", params={"executed_obs_unit_id": x.eou}))
    assert [p["id"] for p in listed["items"]] == created[::-1]  # newest first
    assert listed["total"] == len(created)
    for package in listed["items"]:
        check_package(package, x, package["id"])
    present = {status for status, *_ in x.packages.values()}
    absent = [s.value for s in RawDataPackageStatus if s not in present]
    for statuses in [[s] for s in sorted(present)] + ([absent] if absent else []):
        listed = ok(
            await http.get(
                "/api/transfer/packages",
                params={"executed_obs_unit_id": x.eou, "status": statuses},
            )
        )
        want_ids = [p for p in created[::-1] if x.packages[p][0] in statuses]
        assert [p["id"] for p in listed["items"]] == want_ids, statuses
        assert listed["total"] == len(want_ids), statuses

    details = ok(await http.get(f"/executed_obs_units/{x.eou}/details"))
    assert unit_view(details) == x.unit
    assert [p["id"] for p in details["packages"]] == created  # oldest first
    for package in details["packages"]:
        check_package(package, x, package["id"])
        assert [f["relative_path"] for f in package["files"]] == x.paths_of(package["id"])
        assert package["transfers"] == []
    assert [f["relative_path"] for f in details["unpackaged_files"]] == x.paths_of(None)


async def test_observation_and_raw_data_life_cycle_is_buffered_readable_and_applied_once(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    fresh_obs_unit: int,
) -> None:
    site = secondary_settings.site_name
    dsn = stack.main_db.dsn()
    async with serve(secondary_settings) as url, client(url, tokens.service, timeout_s=5) as http:
        stack.wan.down()
        writes: list[dict[str, Any]] = []

        async def write(
            method: str, path: str, body: dict[str, Any], status: int, created: int
        ) -> dict[str, Any]:
            """A critical write answered from the buffer, naming every record it created."""
            answer: dict[str, Any] = ok(await http.request(method, path, json=body), status)
            assert answer["status"] == "buffered", answer
            assert len(answer["ids"]) == created, answer
            if created:
                assert answer["ids"][0] == answer["id"], answer
            writes.append(answer)
            return answer

        # 1. start
        eou = (
            await write(
                "POST",
                "/executed_obs_units/start",
                {
                    "obs_unit_id": fresh_obs_unit,
                    "instrument_module_id": 1,
                    "start_time": T0.isoformat(),
                    "mean_pwv_mm": 0.8,
                    "conditions": {"wind_m_s": 3, "sky": "clear"},
                },
                201,
                1,
            )
        )["id"]
        x = Expected(
            eou=eou,
            obs_unit_id=fresh_obs_unit,
            unit={
                "obs_unit_id": fresh_obs_unit, "instrument_module_id": 1, "status": "running",
                "start_time": T0, "end_time": None, "mean_pwv_mm": 0.8,
                "conditions": {"wind_m_s": 3, "sky": "clear"},
            },
        )  # fmt: skip
        await check_reads(http, x)

        # 2. a package with new files (sizes 100 + 200 + 300)
        p1_answer = await write(
            "POST",
            "/raw_data_package",
            {
                "name": f"p1-{site}",
                "executed_obs_unit_id": eou,
                "instrument_module_id": 1,
                "files": [
                    {**RAW_FILE, "name": f"n{i}", "relative_path": f"{site}/p1/n{i}.fits",
                     "size_bytes": 100 * i}
                    for i in (1, 2, 3)
                ],
            },
            201,
            4,
        )  # fmt: skip
        p1 = p1_answer["id"]
        x.packages[p1] = ("building", 3, 600, None)
        for i, fid in zip((1, 2, 3), p1_answer["ids"][1:], strict=True):
            x.files[fid] = (f"{site}/p1/n{i}.fits", 100 * i, p1)
        await check_reads(http, x)

        # 3. one file, into that (buffered, still building) package
        single = (
            await write(
                "POST",
                "/raw_data_files",
                {**RAW_FILE, "name": "s", "relative_path": f"{site}/p1/s.fits", "size_bytes": 400,
                 "executed_obs_unit_id": eou, "raw_data_package_id": p1},
                201,
                1,
            )
        )["id"]  # fmt: skip
        x.files[single] = (f"{site}/p1/s.fits", 400, p1)
        x.packages[p1] = ("building", None, None, None)
        await check_reads(http, x)

        # 4. three files in bulk, unpackaged (sizes 10 + 20 + 30)
        bulk = (
            await write(
                "POST",
                "/raw_data_files/bulk",
                {
                    "files": [
                        {**RAW_FILE, "name": f"b{i}", "relative_path": f"{site}/loose/b{i}.fits",
                         "size_bytes": 10 * i, "executed_obs_unit_id": eou}
                        for i in (1, 2, 3)
                    ]
                },
                201,
                3,
            )
        )["ids"]  # fmt: skip
        for i, fid in zip((1, 2, 3), bulk, strict=True):
            x.files[fid] = (f"{site}/loose/b{i}.fits", 10 * i, None)
        await check_reads(http, x)

        # 5. a package of two of those existing (buffered) files
        p2 = (
            await write(
                "POST",
                "/raw_data_package",
                {
                    "name": f"p2-{site}",
                    "executed_obs_unit_id": eou,
                    "instrument_module_id": 1,
                    "raw_data_file_ids": bulk[:2],
                },
                201,
                1,
            )
        )["id"]
        x.packages[p2] = ("building", 2, 30, None)
        for fid in bulk[:2]:
            path, size, _ = x.files[fid]
            x.files[fid] = (path, size, p2)
        await check_reads(http, x)

        # 6., 7. finalize both
        answer = await write(
            "PUT", f"/raw_data_package/{p1}/finalize", {"checksum": "md5:feedfeed"}, 200, 0
        )
        assert answer["id"] == p1
        x.packages[p1] = ("complete", 4, 1000, "md5:feedfeed")
        await check_reads(http, x)
        assert (await write("PUT", f"/raw_data_package/{p2}/finalize", {}, 200, 0))["id"] == p2
        x.packages[p2] = ("complete", 2, 30, None)
        await check_reads(http, x)

        # 8. finish, merging conditions into those of the start
        answer = await write(
            "PUT",
            f"/executed_obs_units/{eou}/finish",
            {
                "status": "interrupted",
                "end_time": T1.isoformat(),
                "conditions": {"sky": "cloudy", "reason": "wind"},
            },
            200,
            0,
        )
        assert answer["id"] == eou
        x.unit.update(
            status="interrupted",
            end_time=T1,
            conditions={"wind_m_s": 3, "sky": "cloudy", "reason": "wind"},
        )
        await check_reads(http, x)
        assert len({w["tx_id"] for w in writes}) == len(writes) == 8

        async def states() -> set[str]:
            return {ok(await http.get(f"/transactions/{w['tx_id']}"))["state"] for w in writes}

        assert await states() == {"buffered"}
        state = await buffer_state(secondary_settings.redis_url, site)
        assert (state["stream"], state["dead"]) == (8, 0)
        assert state["overlay"] > 0
        assert (
            await fetchval(dsn, "SELECT count(*) FROM applied_transactions WHERE site = $1", site)
            == 0
        )
        assert (
            await fetchval(dsn, "SELECT count(*) FROM executed_obs_units WHERE id = $1::uuid", eou)
            == 0
        )

        stack.wan.up()
        await settle(stack, worker)
        state = await buffer_state(secondary_settings.redis_url, site)
        assert (state["overlay"], state["stream"], state["dead"]) == (0, 0, 0)
        assert await states() == {"visible"}
        await check_reads(http, x)  # now from the replica alone

    assert (
        await fetchval(
            dsn, "SELECT count(*) FROM executed_obs_units WHERE obs_unit_id = $1", fresh_obs_unit
        )
        == 1
    )
    assert (
        await fetchval(
            dsn,
            "SELECT status || ' ' || end_time::text FROM executed_obs_units WHERE id = $1::uuid",
            eou,
        )
        == "interrupted 2026-11-22 03:42:00+00"
    )
    files_on_main = await fetchval(
        dsn,
        "SELECT array_agg(concat_ws(' ', id, relative_path, size_bytes, raw_data_package_id)"
        " ORDER BY id) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
        eou,
    )
    assert files_on_main == sorted(
        " ".join(str(v) for v in (fid, path, size, package) if v is not None)
        for fid, (path, size, package) in x.files.items()
    )
    packages = await fetchval(
        dsn,
        "SELECT array_agg(concat_ws(' ', id, status, file_count, total_size_bytes, checksum)"
        " ORDER BY created_at, id) FROM raw_data_packages WHERE executed_obs_unit_id = $1::uuid",
        eou,
    )
    assert packages == [f"{p1} complete 4 1000 md5:feedfeed", f"{p2} complete 2 30"]
    applied = await fetchval(
        dsn,
        "SELECT array_agg(tx_id::text ORDER BY seq) FROM applied_transactions WHERE site = $1",
        site,
    )
    assert applied == [w["tx_id"] for w in writes]
