"""Every critical write of the observations and raw-data areas, made while main is
unreachable: accepted, read back alone and inside related lists, applied once on main,
visible after replication, overlay removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, fetchval, serve

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=42)
FILE = {"checksum": "sha256:0011223344556677", "file_type": "fits", "instrument_module_id": 1}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def accepted(answer: dict[str, Any], created: int) -> dict[str, Any]:
    """A critical write answered from the buffer, naming every record it created."""
    assert answer["status"] == "buffered", answer
    assert len(answer["ids"]) == created, answer
    if created:
        assert answer["ids"][0] == answer["id"], answer
    return answer


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


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
            answer = accepted(
                await ok(await http.request(method, path, json=body), status), created
            )
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
        # 2. a package with new files (sizes 100 + 200 + 300)
        p1_answer = await write(
            "POST",
            "/raw_data_package",
            {
                "name": f"p1-{site}",
                "executed_obs_unit_id": eou,
                "instrument_module_id": 1,
                "files": [
                    {**FILE, "name": f"n{i}", "relative_path": f"{site}/p1/n{i}.fits",
                     "size_bytes": 100 * i}
                    for i in (1, 2, 3)
                ],
            },
            201,
            4,
        )  # fmt: skip
        p1, new_files = p1_answer["id"], p1_answer["ids"][1:]
        # 3. one file, into that (buffered, still building) package
        single = (
            await write(
                "POST",
                "/raw_data_files",
                {**FILE, "name": "s", "relative_path": f"{site}/p1/s.fits", "size_bytes": 400,
                 "executed_obs_unit_id": eou, "raw_data_package_id": p1},
                201,
                1,
            )
        )["id"]  # fmt: skip
        # 4. three files in bulk, unpackaged (sizes 10 + 20 + 30)
        bulk = (
            await write(
                "POST",
                "/raw_data_files/bulk",
                {
                    "files": [
                        {**FILE, "name": f"b{i}", "relative_path": f"{site}/loose/b{i}.fits",
                         "size_bytes": 10 * i, "executed_obs_unit_id": eou}
                        for i in (1, 2, 3)
                    ]
                },
                201,
                3,
            )
        )["ids"]  # fmt: skip
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
        # 6., 7. finalize both
        assert (
            await write(
                "PUT", f"/raw_data_package/{p1}/finalize", {"checksum": "md5:feedfeed"}, 200, 0
            )
        )["id"] == p1
        assert (await write("PUT", f"/raw_data_package/{p2}/finalize", {}, 200, 0))["id"] == p2
        # 8. finish, merging conditions into those of the start
        assert (
            await write(
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
        )["id"] == eou
        assert len({w["tx_id"] for w in writes}) == len(writes) == 8

        p1_files = sorted([*new_files, single])
        p2_files = sorted(bulk[:2])
        all_files = sorted([*p1_files, *bulk])
        p1_paths = sorted([f"{site}/p1/n{i}.fits" for i in (1, 2, 3)] + [f"{site}/p1/s.fits"])
        p2_paths = [f"{site}/loose/b1.fits", f"{site}/loose/b2.fits"]
        package_of = {**dict.fromkeys(p1_files, p1), **dict.fromkeys(p2_files, p2), bulk[2]: None}

        def check_unit(unit: dict[str, Any]) -> None:
            assert unit["id"] == eou
            assert (unit["status"], unit["obs_unit_id"], unit["instrument_module_id"]) == (
                "interrupted",
                fresh_obs_unit,
                1,
            )
            assert (at(unit["start_time"]), at(unit["end_time"])) == (T0, T1)
            assert unit["mean_pwv_mm"] == 0.8
            assert unit["conditions"] == {"wind_m_s": 3, "sky": "cloudy", "reason": "wind"}

        def check_package(
            package: dict[str, Any],
            pid: str,
            count: int,
            size: int,
            checksum: str | None,
            paths: list[str],
        ) -> None:
            assert package["id"] == pid
            assert package["executed_obs_unit_id"] == eou
            assert (package["status"], package["file_count"], package["total_size_bytes"]) == (
                "complete",
                count,
                size,
            )
            assert package["checksum"] == checksum
            assert [f["relative_path"] for f in package["files"]] == paths
            assert {f["raw_data_package_id"] for f in package["files"]} == {pid}

        async def check_reads() -> None:
            check_unit(await ok(await http.get(f"/executed_obs_units/{eou}")))
            for status, expected in (("interrupted", [eou]), ("running", []), (None, [eou])):
                params: dict[str, Any] = {"obs_unit_id": fresh_obs_unit}
                if status:
                    params["status"] = status
                listed = await ok(await http.get("/executed_obs_units", params=params))
                assert [u["id"] for u in listed["items"]] == expected, status
                assert listed["total"] == len(expected), status
            (listed_unit,) = (
                await ok(
                    await http.get("/executed_obs_units", params={"obs_unit_id": fresh_obs_unit})
                )
            )["items"]
            check_unit(listed_unit)

            files = await ok(
                await http.get(
                    "/raw_data_files", params={"executed_obs_unit_id": eou, "limit": 1000}
                )
            )
            assert files["total"] == 7
            assert sorted(f["id"] for f in files["items"]) == all_files
            assert {f["id"]: f["raw_data_package_id"] for f in files["items"]} == package_of
            sizes = {f["relative_path"]: f["size_bytes"] for f in files["items"]}
            assert sizes[f"{site}/p1/s.fits"] == 400
            assert sum(sizes.values()) == 1000 + 60
            for pid, expected in ((p1, p1_files), (p2, p2_files)):
                in_package = await ok(
                    await http.get("/raw_data_files", params={"raw_data_package_id": pid})
                )
                assert sorted(f["id"] for f in in_package["items"]) == expected
                assert in_package["total"] == len(expected)

            check_package(
                await ok(await http.get(f"/raw_data_package/{p1}")),
                p1, 4, 1000, "md5:feedfeed", p1_paths,
            )  # fmt: skip
            check_package(
                await ok(await http.get(f"/raw_data_package/{p2}")), p2, 2, 30, None, p2_paths
            )

            details = await ok(await http.get(f"/executed_obs_units/{eou}/details"))
            check_unit(details)
            assert [p["id"] for p in details["packages"]] == [p1, p2]
            first, second = details["packages"]
            check_package(first, p1, 4, 1000, "md5:feedfeed", p1_paths)
            check_package(second, p2, 2, 30, None, p2_paths)
            assert [p["transfers"] for p in details["packages"]] == [[], []]
            assert [f["id"] for f in details["unpackaged_files"]] == [bulk[2]]

        async def states() -> set[str]:
            return {
                (await ok(await http.get(f"/transactions/{w['tx_id']}")))["state"] for w in writes
            }

        await check_reads()  # all of it still only in the buffer
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
        while (await worker.processor.backlog())[0]:
            await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        state = await buffer_state(secondary_settings.redis_url, site)
        assert (state["overlay"], state["stream"], state["dead"]) == (0, 0, 0)
        assert await states() == {"visible"}
        await check_reads()  # now from the replica alone

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
    assert (
        await fetchval(
            dsn,
            "SELECT count(*) FROM raw_data_files"
            " WHERE executed_obs_unit_id = $1::uuid AND id = ANY($2::uuid[])",
            eou,
            all_files,
        )
        == await fetchval(
            dsn,
            "SELECT count(DISTINCT id) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
            eou,
        )
        == 7
    )
    packed = await fetchval(
        dsn,
        "SELECT array_agg(raw_data_package_id::text || ':' || id::text ORDER BY id)"
        " FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid"
        " AND raw_data_package_id IS NOT NULL",
        eou,
    )
    assert sorted(packed) == sorted(f"{pid}:{fid}" for fid, pid in package_of.items() if pid)
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
