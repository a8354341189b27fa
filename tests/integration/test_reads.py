"""Read your writes at a secondary site through every stage, with filters, ordering and
pagination consistent across replica rows and buffered records; overlay kept until the
replica shows the commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import RAW_FILE, all_pages, buffer_state, client, replica_paused, serve

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_reads_see_a_write_exactly_once_at_every_stage(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    fresh_obs_unit: int,
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (
            await http.post("/executed_obs_units/start", json={"obs_unit_id": fresh_obs_unit})
        ).json()

        async def check(expected_status: str) -> None:
            got = await http.get(f"/executed_obs_units/{eou['id']}")
            assert got.status_code == 200, got.text
            assert got.json()["status"] == expected_status
            listed = (
                await http.get("/executed_obs_units", params={"obs_unit_id": fresh_obs_unit})
            ).json()
            assert listed["total"] == 1
            assert [i["id"] for i in listed["items"]] == [eou["id"]]
            assert listed["items"][0]["status"] == expected_status

        await check("running")  # buffered
        with replica_paused(stack):
            assert await worker.processor.run_once() == 1
            await check("running")  # applied on main, not on the replica
            assert await worker.tracker.run_once() == []
            assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
                "overlay"
            ] == 1
            finish = await http.put(
                f"/executed_obs_units/{eou['id']}/finish", json={"status": "failed"}
            )
            assert finish.status_code == 200, finish.text
            await check("failed")  # later buffered update over an applied record
            assert await worker.processor.run_once() == 1
            await check("failed")
        stack.wait_replica_caught_up()
        settled = await worker.tracker.run_once()
        assert settled == [eou["tx_id"], finish.json()["tx_id"]]
        await check("failed")  # visible: read from the replica alone
        state = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert state["overlay"] == 0
        assert state["awaiting_replica"] == 0


async def test_overlay_record_stays_while_a_newer_transaction_still_touches_it(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    fresh_obs_unit: int,
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (
            await http.post("/executed_obs_units/start", json={"obs_unit_id": fresh_obs_unit})
        ).json()
        assert await worker.processor.run_once() == 1
        await http.put(f"/executed_obs_units/{eou['id']}/finish", json={})  # still buffered
        stack.wait_replica_caught_up()
        assert await worker.tracker.run_once() == [eou["tx_id"]]
        # The start is visible, but the finish is not applied: the record must stay.
        assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
            "overlay"
        ] == 1
        assert (await http.get(f"/executed_obs_units/{eou['id']}")).json()["status"] == "success"


async def test_pagination_over_replica_and_buffer_is_complete_ordered_and_exactly_once(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    fresh_obs_unit: int,
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:

        async def start(i: int) -> dict[str, Any]:
            r = await http.post(
                "/executed_obs_units/start",
                json={
                    "obs_unit_id": fresh_obs_unit,
                    # Interleave start times across the stages so every page mixes sources.
                    "start_time": (T0 + timedelta(minutes=(i * 7) % 30)).isoformat(),
                },
            )
            assert r.status_code == 201, r.text
            return dict(r.json())

        visible = [await start(i) for i in range(0, 10)]
        assert await worker.processor.run_once() == 10
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        with replica_paused(stack):
            applied = [await start(i) for i in range(10, 20)]
            assert await worker.processor.run_once() == 10
            buffered = [await start(i) for i in range(20, 30)]
            # Buffered updates to records from each stage.
            finished = [visible[0], applied[0], buffered[0], visible[5]]
            for rec in finished:
                r = await http.put(f"/executed_obs_units/{rec['id']}/finish", json={})
                assert r.status_code == 200, r.text

            for order in ("-start_time", "start_time"):
                items, totals = await all_pages(
                    http, "/executed_obs_units", {"obs_unit_id": fresh_obs_unit, "order": order}, 7
                )
                assert totals == {30}
                ids = [i["id"] for i in items]
                assert len(ids) == len(set(ids)) == 30
                assert set(ids) == {r["id"] for r in visible + applied + buffered}
                keys = [(i["start_time"], i["id"]) for i in items]
                starts = [datetime.fromisoformat(k[0]) for k in keys]
                assert starts == sorted(starts, reverse=order.startswith("-"))

            done, totals = await all_pages(
                http,
                "/executed_obs_units",
                {"obs_unit_id": fresh_obs_unit, "status": "success"},
                3,
            )
            assert totals == {4}
            assert {i["id"] for i in done} == {r["id"] for r in finished}
            running = (
                await http.get(
                    "/executed_obs_units",
                    params={"obs_unit_id": fresh_obs_unit, "status": "running", "limit": 100},
                )
            ).json()
            assert running["total"] == 26
            assert not {i["id"] for i in running["items"]} & {r["id"] for r in finished}


async def test_package_read_includes_buffered_files_and_packed_replica_files(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    file = {
        "size_bytes": 100,
        "checksum": "sha256:0123456789ab",
        "file_type": "fits",
        "instrument_module_id": 1,
    }
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]
        bulk = await http.post(
            "/raw_data_files/bulk",
            json={
                "files": [
                    {
                        **file,
                        "name": f"{i}",
                        "relative_path": f"{eou}/{i}.fits",
                        "executed_obs_unit_id": eou,
                    }
                    for i in range(4)
                ]
            },
        )
        assert bulk.status_code == 201, bulk.text
        existing = bulk.json()["ids"]
        # Two of them reach the replica before they are packed.
        assert await worker.processor.run_once() == 2
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        package = await http.post(
            "/raw_data_package",
            json={
                "name": f"pkg-{eou}",
                "executed_obs_unit_id": eou,
                "instrument_module_id": 1,
                "raw_data_file_ids": existing[:3],
                "files": [{**file, "name": "new", "relative_path": f"{eou}/new.fits"}],
            },
        )
        assert package.status_code == 201, package.text
        pkg = package.json()
        got = (await http.get(f"/raw_data_package/{pkg['id']}")).json()
        assert got["status"] == "building"
        assert got["file_count"] == 4
        assert sorted(f["relative_path"] for f in got["files"]) == sorted(
            [f"{eou}/{i}.fits" for i in range(3)] + [f"{eou}/new.fits"]
        )
        in_package = (
            await http.get("/raw_data_files", params={"raw_data_package_id": pkg["id"]})
        ).json()
        assert in_package["total"] == 4
        fin = await http.put(
            f"/raw_data_package/{pkg['id']}/finalize", json={"checksum": "md5:feedbeef00"}
        )
        assert fin.status_code == 200, fin.text
        got = (await http.get(f"/raw_data_package/{pkg['id']}")).json()
        assert (got["status"], got["file_count"], got["total_size_bytes"]) == ("complete", 4, 400)
        again = await http.put(f"/raw_data_package/{pkg['id']}/finalize", json={})
        assert again.status_code == 409


async def test_text_order_is_the_same_for_replica_rows_and_buffered_records(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    names = ["b", "B", "a", "É", "_x", "Z9", "ä", "a0", "A~"]
    file = {
        "size_bytes": 1,
        "checksum": "sha256:0123456789ab",
        "file_type": "fits",
        "instrument_module_id": 1,
    }
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]

        async def add(name: str) -> None:
            body = {
                **file,
                "name": name,
                "relative_path": f"{eou}/{name}",
                "executed_obs_unit_id": eou,
            }
            assert (await http.post("/raw_data_files", json=body)).status_code == 201

        for name in names[:5]:
            await add(name)
        assert await worker.processor.run_once() == 6
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        for name in names[5:]:
            await add(name)  # these stay buffered
        for order, reverse in (("relative_path", False), ("-relative_path", True)):
            listed = (
                await http.get(
                    "/raw_data_files", params={"executed_obs_unit_id": eou, "order": order}
                )
            ).json()
            got = [f["relative_path"].split("/", 1)[1] for f in listed["items"]]
            assert got == sorted(names, reverse=reverse)


async def test_a_buffered_file_copy_and_transfer_log_read_back_by_id_at_every_stage(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:

        async def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await http.post(path, json=body)
            assert r.status_code == 201, r.text
            return dict(r.json())

        eou = (await created("/executed_obs_units/start", {"obs_unit_id": 1}))["id"]
        package = await created(
            "/raw_data_package",
            {
                "name": f"pkg-{eou}",
                "executed_obs_unit_id": eou,
                "instrument_module_id": 1,
                "files": [{**RAW_FILE, "name": "a", "relative_path": f"{eou}/a.fits",
                           "size_bytes": 10}],
            },
        )  # fmt: skip
        (file_id,) = (i for i in package["ids"] if i != package["id"])
        fin = await http.put(f"/raw_data_package/{package['id']}/finalize", json={})
        assert fin.status_code == 200, fin.text
        transfer = await created(
            "/api/transfer/transfers", {"raw_data_package_id": package["id"], "route_id": 1}
        )
        await created(f"/api/transfer/transfers/{transfer['id']}/logs", {"message": "started"})
        copy = await created(
            "/api/transfer/copies",
            {"raw_data_package_id": package["id"], "data_location_id": 2, "path": f"/b/{eou}"},
        )
        changed = await http.put(f"/api/transfer/copies/{copy['id']}", json={"status": "verified"})
        assert changed.status_code == 200, changed.text

        async def check() -> None:
            got_file = await http.get(f"/raw_data_files/{file_id}")
            assert got_file.status_code == 200, got_file.text
            assert got_file.json()["relative_path"] == f"{eou}/a.fits"
            assert got_file.json()["raw_data_package_id"] == package["id"]
            got_copy = await http.get(f"/api/transfer/copies/{copy['id']}")
            assert got_copy.status_code == 200, got_copy.text
            assert got_copy.json()["status"] == "verified"  # the later buffered update
            logs = await http.get(f"/api/transfer/transfers/{transfer['id']}/logs")
            assert logs.status_code == 200, logs.text
            assert [entry["message"] for entry in logs.json()["items"]] == ["started"]

        await check()  # buffered
        assert await worker.processor.run_once() == 7
        stack.wait_replica_caught_up()
        assert len(await worker.tracker.run_once()) == 7
        await check()  # visible: from the replica alone


async def test_unknown_ids_are_404_for_files_copies_and_transfer_logs(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.viewer) as http:
        for path in (
            f"/raw_data_files/{uuid.uuid4()}",
            f"/api/transfer/copies/{uuid.uuid4()}",
            f"/api/transfer/transfers/{uuid.uuid4()}/logs",
        ):
            r = await http.get(path)
            assert r.status_code == 404, f"{path}: {r.status_code} {r.text}"
            assert r.json()["code"] == "not_found"
        malformed = await http.get("/raw_data_files/not-a-uuid")
        assert malformed.status_code == 422
        assert malformed.json()["field"] == "file_id"


async def test_raw_data_files_list_names_the_filter_it_needs(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.viewer) as http:
        r = await http.get("/raw_data_files")
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "executed_obs_unit_id"
        assert "raw_data_package_id" in r.json()["detail"]


async def test_staging_jobs_list_orders_by_the_named_field_and_refuses_an_unknown_one(
    stack: Stack, tokens: Tokens, main_settings: Settings
) -> None:
    tag = f"order-{uuid.uuid4().hex[:8]}"
    # Created a, b, c; last changed in the opposite order.
    stack.main_db.psql(
        "INSERT INTO staging_jobs (id, destination_location_id, status, requested_by,"
        " created_at, updated_at) VALUES"
        + ",".join(
            f" ('{uuid.uuid4()}', 5, 'pending', '{tag}-{name}',"
            f" '{T0 + timedelta(minutes=i)}', '{T0 + timedelta(minutes=10 - i)}')"
            for i, name in enumerate("abc")
        ),
        user="ccat",
    )
    async with serve(main_settings) as url, client(url, tokens.viewer) as http:

        async def mine(order: str | None) -> list[str]:
            params: dict[str, str | int] = {"limit": 1000}
            if order is not None:
                params["order"] = order
            r = await http.get("/api/staging/jobs", params=params)
            assert r.status_code == 200, r.text
            names = [j["requested_by"] for j in r.json()["items"]]
            return [n.rsplit("-", 1)[1] for n in names if n.startswith(tag)]

        assert await mine("created_at") == ["a", "b", "c"]
        assert await mine("-created_at") == ["c", "b", "a"]
        assert await mine("updated_at") == ["c", "b", "a"]
        assert await mine(None) == ["c", "b", "a"]  # newest first
        refused = await http.get("/api/staging/jobs", params={"order": "colour"})
        assert refused.status_code == 422
        assert refused.json()["field"] == "order"
