"""Transfer lists and the overview over the replica and the buffer: pages that show each
transfer exactly once, in order, and bytes in flight that count every transferring one."""

from __future__ import annotations

import uuid
from typing import Any

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import (
    client,
    complete_package,
    in_list_order,
    ok,
    replica_paused,
    serve,
    settle,
    start_transfer,
)


async def test_transfer_lists_page_over_replica_and_buffer_exactly_once_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        ids: list[str] = []

        async def transfers_for(label: str, count: int) -> None:
            _, package = await complete_package(http, f"{label}-{secondary_settings.site_name}")
            for route in (1, 2, 3)[:count]:
                ids.append(await start_transfer(http, package, route))

        await transfers_for("visible", 3)
        await settle(stack, worker)
        with replica_paused(stack):
            await transfers_for("applied", 3)
            while (await worker.processor.backlog())[0]:
                await worker.processor.run_once()
            await transfers_for("buffered", 3)
            # Move one from each stage along, still in the buffer.
            for t in (ids[0], ids[3], ids[6]):
                ok(await http.put(f"/api/transfer/transfers/{t}", json={"status": "transferring"}))
            seen: list[dict[str, Any]] = []
            offset = 0
            while True:
                page = ok(
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
            assert seen == in_list_order(seen, "-created_at")
            moving = ok(
                await http.get(
                    "/api/transfer/transfers", params={"status": "transferring", "limit": 1000}
                )
            )
            assert {ids[0], ids[3], ids[6]} <= {t["id"] for t in moving["items"]}
            assert not {ids[1], ids[4], ids[7]} & {t["id"] for t in moving["items"]}


async def test_bytes_in_flight_counts_every_transferring_transfer_replica_and_buffer(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    many = 10_050  # more than any page the overview could have read them through
    async with serve(main_settings) as url, client(url, tokens.service) as http:
        _, package = await complete_package(http, f"many-{uuid.uuid4().hex[:12]}")
        before = ok(await http.get("/api/transfer/overview"))
        stack.main_db.psql(
            "INSERT INTO data_transfers (id, raw_data_package_id, route_id, status, bytes_total,"
            " bytes_transferred, attempts, created_at, updated_at)"
            f" SELECT gen_random_uuid(), '{package}', 3, 'transferring', 3000, 1000, 1, now(),"
            f" now() FROM generate_series(1, {many})",
            user="ccat",
        )
        try:
            after = ok(await http.get("/api/transfer/overview"))
            assert after["bytes_in_flight"] - before["bytes_in_flight"] == many * 2000
            assert (
                after["transfers_by_status"]["transferring"]
                - before["transfers_by_status"]["transferring"]
                == many
            )
            stack.wait_replica_caught_up()
            async with (
                serve(secondary_settings) as site_url,
                client(site_url, tokens.service) as site,
            ):
                assert ok(await site.get("/api/transfer/overview")) == after
                started = await start_transfer(site, package)
                ok(
                    await site.put(
                        f"/api/transfer/transfers/{started}",
                        json={"status": "transferring", "bytes_transferred": 500},
                    )
                )
                buffered = ok(await site.get("/api/transfer/overview"))
                assert buffered["bytes_in_flight"] - after["bytes_in_flight"] == 2500
        finally:
            stack.main_db.psql(
                "DELETE FROM data_transfers WHERE raw_data_package_id = "
                f"'{package}' AND route_id = 3",
                user="ccat",
            )
