"""Every critical write of the data-transfer area, made while main is unreachable: accepted,
read back alone and inside related lists, applied once on main, visible after replication,
overlay removed."""

from __future__ import annotations

from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, fetchval, serve

FILE = {"size_bytes": 1000, "checksum": "sha256:0011223344556677", "file_type": "fits",
        "instrument_module_id": 1}  # fmt: skip


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def a_complete_package(http: httpx.AsyncClient, name: str) -> tuple[str, str]:
    eou = (await ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201))[
        "id"
    ]
    package = await ok(
        await http.post(
            "/raw_data_package",
            json={
                "name": name, "executed_obs_unit_id": eou, "instrument_module_id": 1,
                "files": [{**FILE, "name": f"f{i}", "relative_path": f"{name}/f{i}.fits"}
                          for i in range(3)],
            },
        ),
        201,
    )  # fmt: skip
    await ok(
        await http.put(
            f"/raw_data_package/{package['id']}/finalize", json={"checksum": "md5:feedfeed"}
        )
    )
    return eou, package["id"]


async def test_transfer_life_cycle_is_buffered_readable_and_applied_once(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.service, timeout_s=5) as http:
        stack.wan.down()
        eou, package = await a_complete_package(http, f"pkg-{site}")
        # Cologne archive (route 1) and Cornell via Cologne (route 2).
        to_archive = await ok(
            await http.post(
                "/api/transfer/transfers", json={"raw_data_package_id": package, "route_id": 1}
            ),
            201,
        )
        to_cornell = await ok(
            await http.post(
                "/api/transfer/transfers", json={"raw_data_package_id": package, "route_id": 2}
            ),
            201,
        )
        assert to_archive["status"] == "buffered"
        assert (await ok(await http.get(f"/raw_data_package/{package}")))[
            "status"
        ] == "transferring"

        t1, t2 = to_archive["id"], to_cornell["id"]
        await ok(
            await http.put(
                f"/api/transfer/transfers/{t1}",
                json={"status": "transferring", "bytes_transferred": 1000},
            )
        )
        await ok(
            await http.post(f"/api/transfer/transfers/{t1}/logs", json={"message": "bbcp started"}),
            201,
        )
        done = await ok(
            await http.put(f"/api/transfer/transfers/{t1}", json={"status": "completed"})
        )
        copy_id = done["ids"][0]
        await ok(
            await http.put(
                f"/api/transfer/transfers/{t2}",
                json={"status": "failed", "error": "relay disk full"},
            )
        )
        await ok(await http.post(f"/api/transfer/transfers/{t2}/reset"))
        await ok(await http.put(f"/api/transfer/copies/{copy_id}", json={"status": "verified"}))
        own_copy = await ok(
            await http.post(
                "/api/transfer/copies",
                json={
                    "raw_data_package_id": package,
                    "data_location_id": 2,
                    "path": f"/data/buffer/pkg-{site}",
                },
            ),
            201,
        )

        async def check_reads() -> None:
            first = await ok(await http.get(f"/api/transfer/transfers/{t1}"))
            assert (first["status"], first["bytes_transferred"]) == ("completed", 3000)
            second = await ok(await http.get(f"/api/transfer/transfers/{t2}"))
            assert (second["status"], second["attempts"], second["error"]) == ("pending", 2, None)
            listed = await ok(
                await http.get("/api/transfer/transfers", params={"raw_data_package_id": package})
            )
            assert sorted(t["id"] for t in listed["items"]) == sorted([t1, t2])
            pending = await ok(
                await http.get(
                    "/api/transfer/transfers",
                    params={"raw_data_package_id": package, "status": "pending"},
                )
            )
            assert [t["id"] for t in pending["items"]] == [t2]
            logs = await ok(await http.get(f"/api/transfer/transfers/{t1}/logs"))
            assert [entry["message"] for entry in logs["items"]] == ["bbcp started"]
            copies = await ok(
                await http.get("/api/transfer/copies", params={"raw_data_package_id": package})
            )
            assert {c["id"]: c["status"] for c in copies["items"]} == {
                copy_id: "verified",
                own_copy["id"]: "present",
            }
            assert (await ok(await http.get(f"/raw_data_package/{package}")))[
                "status"
            ] == "archived"
            details = await ok(await http.get(f"/executed_obs_units/{eou}/details"))
            (pkg,) = details["packages"]
            assert len(pkg["files"]) == 3
            assert sorted(t["id"] for t in pkg["transfers"]) == sorted([t1, t2])
            archived = await ok(
                await http.get(
                    "/api/transfer/packages",
                    params={"status": "archived", "executed_obs_unit_id": eou},
                )
            )
            assert [p["id"] for p in archived["items"]] == [package]

        await check_reads()  # all of it still only in the buffer
        overview = await ok(await http.get("/api/transfer/overview"))
        assert overview["transfers_by_status"]["completed"] >= 1
        stack.wan.up()
        while (await worker.processor.backlog())[0]:
            await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        await check_reads()  # now from the replica alone
        state = await buffer_state(secondary_settings.redis_url, site)
        assert (state["overlay"], state["stream"], state["dead"]) == (0, 0, 0)
    dsn = stack.main_db.dsn()
    assert (
        await fetchval(
            dsn, "SELECT count(*) FROM data_transfers WHERE raw_data_package_id = $1::uuid", package
        )
        == 2
    )
    assert (
        await fetchval(
            dsn,
            "SELECT count(*) FROM physical_copies WHERE raw_data_package_id = $1::uuid",
            package,
        )
        == 2
    )
    assert (
        await fetchval(
            dsn, "SELECT count(*) FROM data_transfer_logs WHERE data_transfer_id = $1::uuid", t1
        )
        == 1
    )
    assert await fetchval(dsn, "SELECT attempts FROM data_transfers WHERE id = $1::uuid", t2) == 2
    # start, package, finalize, 2 transfers, progress, log, complete, fail, reset, 2 copy writes
    assert (
        await fetchval(dsn, "SELECT count(*) FROM applied_transactions WHERE site = $1", site) == 12
    )


async def test_transfers_follow_their_state_machine(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        _, package = await a_complete_package(http, f"sm-{secondary_settings.site_name}")
        t = (
            await ok(
                await http.post(
                    "/api/transfer/transfers", json={"raw_data_package_id": package, "route_id": 1}
                ),
                201,
            )
        )["id"]
        assert (await http.post(f"/api/transfer/transfers/{t}/reset")).status_code == 409
        assert (await http.put(f"/api/transfer/transfers/{t}", json={"status": "failed"})).json()[
            "field"
        ] == "error"
        await ok(await http.put(f"/api/transfer/transfers/{t}", json={"status": "completed"}))
        again = await http.put(f"/api/transfer/transfers/{t}", json={"status": "transferring"})
        assert again.status_code == 409
        assert again.json()["field"] == "status"
        too_much = await http.put(
            f"/api/transfer/transfers/{t}",
            json={"status": "transferring", "bytes_transferred": 10**9},
        )
        assert too_much.status_code == 409


async def test_a_package_must_be_complete_before_it_moves(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        eou = (
            await ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)
        )["id"]
        building = (
            await ok(
                await http.post(
                    "/raw_data_package",
                    json={
                        "name": f"b-{eou}",
                        "executed_obs_unit_id": eou,
                        "instrument_module_id": 1,
                    },
                ),
                201,
            )
        )["id"]
        r = await http.post(
            "/api/transfer/transfers", json={"raw_data_package_id": building, "route_id": 1}
        )
        assert r.status_code == 409
        assert r.json()["field"] == "raw_data_package_id"
        unknown_route = await http.post(
            "/api/transfer/transfers", json={"raw_data_package_id": building, "route_id": 999}
        )
        assert unknown_route.status_code in (409, 422)


async def test_transfer_lists_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        ids: list[str] = []

        async def transfers_for(label: str, count: int) -> None:
            _, package = await a_complete_package(http, f"{label}-{secondary_settings.site_name}")
            for route in (1, 2, 3)[:count]:
                ids.append(
                    (
                        await ok(
                            await http.post(
                                "/api/transfer/transfers",
                                json={"raw_data_package_id": package, "route_id": route},
                            ),
                            201,
                        )
                    )["id"]
                )

        await transfers_for("visible", 3)
        while (await worker.processor.backlog())[0]:
            await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        stack.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            await transfers_for("applied", 3)
            while (await worker.processor.backlog())[0]:
                await worker.processor.run_once()
            await transfers_for("buffered", 3)
            # Move one from each stage along, still in the buffer.
            for t in (ids[0], ids[3], ids[6]):
                await ok(
                    await http.put(f"/api/transfer/transfers/{t}", json={"status": "transferring"})
                )
            seen: list[dict[str, Any]] = []
            offset = 0
            while True:
                page = await ok(
                    await http.get(
                        "/api/transfer/transfers",
                        params={
                            "route_id": 1,
                            "status": ["pending", "transferring"],
                            "order": "-created_at",
                            "limit": 2,
                            "offset": offset,
                        },
                    )
                )
                seen += [t for t in page["items"] if t["id"] in ids]
                offset += 2
                if offset >= page["total"]:
                    break
            mine = [t["id"] for t in seen]
            assert sorted(mine) == sorted([ids[0], ids[3], ids[6]])
            assert len(mine) == len(set(mine))
            created = [t["created_at"] for t in seen]
            assert created == sorted(created, reverse=True)
            moving = await ok(
                await http.get(
                    "/api/transfer/transfers", params={"status": "transferring", "limit": 1000}
                )
            )
            assert {ids[0], ids[3], ids[6]} <= {t["id"] for t in moving["items"]}
            assert not {ids[1], ids[4], ids[7]} & {t["id"] for t in moving["items"]}
        finally:
            stack.replica.psql("SELECT pg_wal_replay_resume()")
