"""The transfer state machine's refusals: moves a transfer's state does not allow, more bytes
than its package holds, unknown transfers and copies, a package that is not complete and an
unknown route."""

from __future__ import annotations

import uuid
from typing import Any

from ccat_api.config import Settings
from tests.integration.conftest import Tokens
from tests.support import (
    buffer_state,
    client,
    complete_package,
    ok,
    serve,
    start_eou,
    start_transfer,
)


async def test_transfers_follow_their_state_machine(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        _, package = await complete_package(http, f"sm-{secondary_settings.site_name}")
        t = await start_transfer(http, package)
        depth = (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
            "stream"
        ]

        async def refused(method: str, path: str, body: Any, status: int, name: str) -> None:
            r = await http.request(method, path, json=body)
            assert r.status_code == status, r.text
            assert r.json()["field"] == name, r.text
            assert name in r.json()["detail"]

        await refused("POST", f"/api/transfer/transfers/{t}/reset", None, 409, "status")
        await refused("PUT", f"/api/transfer/transfers/{t}", {"status": "failed"}, 422, "error")
        # More bytes than the package holds, on a transfer that may otherwise move.
        await refused(
            "PUT",
            f"/api/transfer/transfers/{t}",
            {"status": "transferring", "bytes_transferred": 3001},
            422,
            "bytes_transferred",
        )
        got = ok(await http.get(f"/api/transfer/transfers/{t}"))
        assert (got["status"], got["bytes_transferred"]) == ("pending", 0)
        ok(
            await http.put(
                f"/api/transfer/transfers/{t}",
                json={"status": "transferring", "bytes_transferred": 3000},
            )
        )
        ok(await http.put(f"/api/transfer/transfers/{t}", json={"status": "completed"}))
        for target in ("transferring", "completed"):
            await refused("PUT", f"/api/transfer/transfers/{t}", {"status": target}, 409, "status")
        await refused(
            "PUT", f"/api/transfer/transfers/{t}", {"status": "failed", "error": "x"}, 409, "status"
        )
        await refused("POST", f"/api/transfer/transfers/{t}/reset", None, 409, "status")
        # Only the two accepted moves were buffered.
        assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
            "stream"
        ] == depth + 2
        unknown = uuid.uuid4()
        for method, path, body in (
            ("GET", f"/api/transfer/transfers/{unknown}", None),
            ("PUT", f"/api/transfer/transfers/{unknown}", {"status": "completed"}),
            ("POST", f"/api/transfer/transfers/{unknown}/reset", None),
            ("POST", f"/api/transfer/transfers/{unknown}/logs", {"message": "x"}),
            ("GET", f"/api/transfer/transfers/{unknown}/logs", None),
            ("GET", f"/api/transfer/copies/{unknown}", None),
            ("PUT", f"/api/transfer/copies/{unknown}", {"status": "verified"}),
        ):
            r = await http.request(method, path, json=body)
            assert r.status_code == 404, f"{method} {path} -> {r.status_code} {r.text}"
            assert str(unknown) in r.json()["detail"]


async def test_a_transfer_needs_a_complete_package_and_a_known_route(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.service) as http:
        eou = (await start_eou(http))["id"]
        building = ok(
            await http.post(
                "/raw_data_package",
                json={"name": f"b-{eou}", "executed_obs_unit_id": eou, "instrument_module_id": 1},
            ),
            201,
        )["id"]
        r = await http.post(
            "/api/transfer/transfers", json={"raw_data_package_id": building, "route_id": 1}
        )
        assert r.status_code == 409, r.text
        assert r.json()["field"] == "raw_data_package_id"
        assert "building" in r.json()["detail"]
        _, complete = await complete_package(http, f"c-{eou}")
        unknown_route = await http.post(
            "/api/transfer/transfers", json={"raw_data_package_id": complete, "route_id": 999}
        )
        assert unknown_route.status_code == 422, unknown_route.text
        assert unknown_route.json()["field"] == "route_id"
        assert (await http.get(f"/raw_data_package/{complete}")).json()["status"] == "complete"
        listed = ok(
            await http.get("/api/transfer/transfers", params={"raw_data_package_id": complete})
        )
        assert listed["total"] == 0
