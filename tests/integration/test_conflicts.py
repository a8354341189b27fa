"""The same record changed in two places: an update buffered at a site while main changed the
row becomes a conflict showing both versions, resolved by applying it anyway or discarding
it; updates of a row nobody else touched, and records only ever created, never conflict."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.integration.test_operator_cli import ccat_api
from tests.support import client, fetch, ok, serve, settle, start_eou

ROW = "SELECT status, mean_pwv_mm, row_version FROM executed_obs_units WHERE id = $1::uuid"


async def main_row(stack: Stack, pk: str) -> dict[str, Any]:
    [row] = await fetch(stack.main_db.dsn(), ROW, pk)
    return dict(row)


def changed_on_main(stack: Stack, pk: str, pwv: float) -> None:
    """Someone at main changes the row (an operator's correction, another site's replay)."""
    stack.main_db.psql(
        f"UPDATE executed_obs_units SET mean_pwv_mm = {pwv} WHERE id = '{pk}'", user="ccat"
    )


async def visible_unit(stack: Stack, worker: SiteWorker, http: httpx.AsyncClient) -> str:
    """A unit started at the site, applied on main and visible on the site's replica."""
    pk = str((await start_eou(http, mean_pwv_mm=1.0))["id"])
    await settle(stack, worker)
    assert (await main_row(stack, pk))["row_version"] == 1
    return pk


async def finish(http: httpx.AsyncClient, pk: str) -> str:
    answer = ok(await http.put(f"/executed_obs_units/{pk}/finish", json={}))
    return str(answer["tx_id"])


async def test_an_update_main_overtook_is_a_conflict_with_both_versions_applied_anyway(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        pk = await visible_unit(stack, worker, http)
        tx_id = await finish(http, pk)
        changed_on_main(stack, pk, 2.5)
        await settle(stack, worker)

        dead = ok(await http.get(f"/transactions/{tx_id}"))
        assert (dead["state"], dead["error_code"]) == ("failed", "conflict"), dead
        conflict = dead["conflict"]
        assert (conflict["model"], conflict["id"]) == ("executed_obs_units", pk)
        assert (conflict["base_version"], conflict["main_version"]) == (1, 2)
        assert conflict["main"]["mean_pwv_mm"] == 2.5
        assert conflict["main"]["status"] == "running"
        assert conflict["change"]["status"] == "success"
        assert "row_version" not in conflict["change"]
        # Main's row is as main left it: the site's change waits for an operator.
        assert await main_row(stack, pk) == {
            "status": "running", "mean_pwv_mm": 2.5, "row_version": 2,
        }  # fmt: skip

        # A plain retry meets the same conflict again; applying anyway goes through.
        ok(await http.post(f"/transactions/{tx_id}/retry"))
        await settle(stack, worker)
        assert ok(await http.get(f"/transactions/{tx_id}"))["error_code"] == "conflict"
        retried = ok(await http.post(f"/transactions/{tx_id}/retry?apply_anyway=true"))
        assert retried["retried"] == [tx_id]
        await settle(stack, worker)
        assert ok(await http.get(f"/transactions/{tx_id}"))["state"] == "visible"
    # The site's change over main's row: what it changed wins, what it did not keeps main's.
    assert await main_row(stack, pk) == {"status": "success", "mean_pwv_mm": 2.5, "row_version": 3}


async def test_a_conflict_discarded_leaves_main_as_it_is(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        pk = await visible_unit(stack, worker, http)
        tx_id = await finish(http, pk)
        changed_on_main(stack, pk, 3.5)
        await settle(stack, worker)
        assert ok(await http.get(f"/transactions/{tx_id}"))["error_code"] == "conflict"

        assert (await http.post(f"/transactions/{tx_id}/discard")).status_code == 204
        assert ok(await http.get(f"/transactions/{tx_id}"))["state"] == "discarded"
        # The site reads main's version again once its change is given up.
        unit = ok(await http.get(f"/executed_obs_units/{pk}"))
        assert (unit["status"], unit["mean_pwv_mm"]) == ("running", 3.5)
    assert await main_row(stack, pk) == {"status": "running", "mean_pwv_mm": 3.5, "row_version": 2}


async def test_updates_nobody_else_made_and_creations_never_conflict(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        # Started and finished within one backlog: the finish is based on a buffered record.
        buffered = str((await start_eou(http))["id"])
        await finish(http, buffered)
        # Finished long after its start was visible: based on the version main still has.
        visible = await visible_unit(stack, worker, http)
        finishes = [await finish(http, visible)]
        await settle(stack, worker)
        # A dead letter of another kind (its row deleted at main) is not applied anyway.
        gone = await visible_unit(stack, worker, http)
        lost = await finish(http, gone)
        stack.main_db.psql(f"DELETE FROM executed_obs_units WHERE id = '{gone}'", user="ccat")
        await settle(stack, worker)
        for tx_id in finishes:
            assert ok(await http.get(f"/transactions/{tx_id}"))["state"] == "visible"
        assert ok(await http.get(f"/transactions/{lost}"))["error_code"] == "P0002"
        refused = await http.post(f"/transactions/{lost}/retry?apply_anyway=true")
        assert refused.status_code == 409, refused.text
        assert "not a conflict" in refused.json()["detail"]
    for pk in (buffered, visible):
        assert (await main_row(stack, pk))["status"] == "success"


async def test_an_operator_resolves_a_conflict_with_the_cli(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        pk = await visible_unit(stack, worker, http)
        tx_id = await finish(http, pk)
        changed_on_main(stack, pk, 4.5)
        await settle(stack, worker)

        code, out, err = await ccat_api(url, tokens.admin, "dead-letters", "show", tx_id)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["error_code"] == "conflict"
        assert (shown["conflict"]["base_version"], shown["conflict"]["main_version"]) == (1, 2)
        assert shown["conflict"]["main"]["mean_pwv_mm"] == 4.5

        code, out, err = await ccat_api(
            url, tokens.admin, "dead-letters", "retry", "--apply-anyway", tx_id
        )
        assert code == 0, err
        assert f"retried {tx_id}" in out
        await settle(stack, worker)
    assert await main_row(stack, pk) == {"status": "success", "mean_pwv_mm": 4.5, "row_version": 3}
