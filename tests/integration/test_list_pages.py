"""A list page read from the overlay's indexes (the first plain inserts in order, their count,
the records to fold, the records in flight) is the page that folding every buffered record
gives: the same items in the same order and the same total, through every stage, with
buffered updates that move records into and out of the filter, buffered deletes, and ties
on the order column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ccat_api.buffering import indexed_pages, overlay
from ccat_api.buffering.buffer import WriteBuffer
from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.idempotency import Answer
from ccat_api.buffering.keys import FOLD_ENTRY, ORDER_ENTRY_PREFIX, SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.support import apply_backlog, client, ok, replica_paused, serve, settle

T0 = datetime(2026, 7, 1, tzinfo=UTC)
MODEL = "executed_obs_units"
ORDERS = ("start_time", "-start_time")


async def pages(
    http: httpx.AsyncClient, obs_unit_id: int, order: str, limit: int
) -> tuple[list[tuple[str, str]], set[int]]:
    """Every (id, start_time) of the list page by page, and every total the pages gave."""
    items: list[tuple[str, str]] = []
    totals: set[int] = set()
    offset = 0
    while True:
        page = ok(
            await http.get(
                "/executed_obs_units",
                params={"obs_unit_id": obs_unit_id, "order": order, "limit": limit,
                        "offset": offset},
            )
        )  # fmt: skip
        totals.add(page["total"])
        items += [(i["id"], i["start_time"]) for i in page["items"]]
        if len(page["items"]) < limit:
            return items, totals
        offset += limit


async def walked_pages(
    http: httpx.AsyncClient,
    obs_unit_id: int,
    order: str,
    limit: int,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[tuple[str, str]], set[int]]:
    """``pages`` with every page served by walking the sorted sets (checked)."""
    snapshots: list[overlay.PageSnapshot | None] = []
    real = overlay.Overlay.page_snapshot

    async def spy(self: overlay.Overlay, *args: Any, **kwargs: Any) -> Any:
        snapshots.append(await real(self, *args, **kwargs))
        return snapshots[-1]

    with monkeypatch.context() as m:
        m.setattr(overlay, "FEW_PLAIN", 0)
        m.setattr(overlay.Overlay, "page_snapshot", spy)
        found = await pages(http, obs_unit_id, order, limit)
    # One overlay read per page: none was read again or left to the folding path.
    assert len(snapshots) == len(found[0]) // limit + 1
    walked = [s is not None and not (s.complete and s.plain_total > 0) for s in snapshots]
    assert all(walked), "a page with plain inserts was not walked"
    return found


async def read_every_way(
    http: httpx.AsyncClient, obs_unit_id: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Each order and page size read three ways: folding every record (the reference), from
    the indexes reading all plain inserts, and from the indexes walking the sorted sets;
    the three must agree."""
    seen: dict[str, Any] = {}
    for order in ORDERS:
        for limit in (1, 3, 100):
            found = {}
            with monkeypatch.context() as m:
                m.setattr(indexed_pages, "FAST_PAGE_MOST_WANTED", 0)
                found["folded"] = await pages(http, obs_unit_id, order, limit)
            found["all"] = await pages(http, obs_unit_id, order, limit)
            found["walked"] = await walked_pages(http, obs_unit_id, order, limit, monkeypatch)
            assert found["all"] == found["folded"], (order, limit)
            assert found["walked"] == found["folded"], (order, limit)
            items, totals = found["folded"]
            assert totals == {len(items)}, (order, limit)
            assert len({i for i, _ in items}) == len(items), (order, limit)
            seen[order] = items
    return seen


async def test_indexed_pages_equal_folded_pages_through_moves_deletes_and_ties(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    fresh_obs_unit: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = int(
        stack.main_db.psql(
            "INSERT INTO obs_units (name, observing_program_id, instrument_id)"
            f" VALUES ('test-other-{fresh_obs_unit}', 1, 1) RETURNING id",
            user="ccat",
        ).splitlines()[0]
    )
    stack.wait_replica_caught_up()
    site = secondary_settings.site_name
    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, SiteKeys(site), idempotency_ttl_s=60)
    principal = Principal(None, "test", "operator")

    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:

        async def start(unit: int, minutes: int) -> dict[str, Any]:
            # Several starts share a minute: ties on start_time, broken by id.
            body = {
                "obs_unit_id": unit,
                "start_time": (T0 + timedelta(minutes=minutes)).isoformat(),
            }
            return dict(ok(await http.post("/executed_obs_units/start", json=body), 201))

        async def current(pk: str) -> dict[str, Any]:
            return dict(ok(await http.get(f"/executed_obs_units/{pk}")))

        async def buffer_update(pk: str, changes: dict[str, Any]) -> None:
            builder = TransactionBuilder(site, principal)
            builder.update(MODEL, pk, changes, await current(pk))
            await buffer.accept(builder.build(), Answer(200, {}))

        async def buffer_delete(pk: str) -> None:
            builder = TransactionBuilder(site, principal)
            builder.delete(MODEL, pk, await current(pk))
            await buffer.accept(builder.build(), Answer(200, {}))

        visible = [await start(fresh_obs_unit, m) for m in (1, 2, 2, 3, 5, 5)]
        await settle(stack, worker)
        with replica_paused(stack):
            applied = [await start(fresh_obs_unit, m) for m in (2, 4, 5)]
            await apply_backlog(worker)
            buffered = [await start(fresh_obs_unit, m) for m in (0, 2, 4, 4, 5, 6, 6)]
            elsewhere = [await start(other, m) for m in (2, 3)]
            # Out of the filter: a replica row, an applied one and a buffered one move away.
            for record in (visible[0], applied[0], buffered[1]):
                await buffer_update(record["id"], {"obs_unit_id": other})
            # Into it: a buffered record of the other obs unit, and back again for one.
            await buffer_update(elsewhere[0]["id"], {"obs_unit_id": fresh_obs_unit})
            await buffer_update(buffered[1]["id"], {"obs_unit_id": fresh_obs_unit})
            # Reordered: later layers change the sort column of each stage's records.
            await buffer_update(visible[1]["id"], {"start_time": T0 + timedelta(minutes=9)})
            await buffer_update(buffered[2]["id"], {"start_time": T0})
            # Gone: a replica row, an applied one and a buffered one.
            for record in (visible[2], applied[1], buffered[3]):
                await buffer_delete(record["id"])

            seen = await read_every_way(http, fresh_obs_unit, monkeypatch)
            ids = {i for i, _ in seen["start_time"]}
            gone = {r["id"] for r in (visible[0], applied[0], visible[2], applied[1], buffered[3])}
            expected = {r["id"] for r in [*visible, *applied, *buffered, elsewhere[0]]} - gone
            assert ids == expected
            assert dict(seen["start_time"])[visible[1]["id"]] == seen["start_time"][-1][1]
            assert seen["start_time"][0][0] in (buffered[0]["id"], buffered[2]["id"])
            assert [i for i, _ in seen["-start_time"]] != [i for i, _ in seen["start_time"]][::-1]

        # The replica shows the applied ones now; the tracker has not dropped them yet.
        stack.wait_replica_caught_up()
        caught_up = await read_every_way(http, fresh_obs_unit, monkeypatch)
        # Records buffered before the fold marks and sorted sets existed have neither: the
        # overlay then reads every record the filter names, and the pages are the same.
        keys = SiteKeys(site)
        await redis.delete(
            keys.overlay_index(MODEL, FOLD_ENTRY),
            keys.overlay_index(MODEL, ORDER_ENTRY_PREFIX + "start_time"),
        )
        for order, items in caught_up.items():
            assert await pages(http, fresh_obs_unit, order, 2) == (items, {len(items)})
        await settle(stack, worker)
        after = await read_every_way(http, fresh_obs_unit, monkeypatch)
        assert {i for i, _ in after["start_time"]} == expected
    await redis.aclose()


async def test_a_page_is_read_again_when_the_processor_was_handed_work_meanwhile(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    fresh_obs_unit: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = overlay.Overlay.delivered

    async def moving(self: overlay.Overlay) -> str:
        calls.append("delivered")
        return "moved" if len(calls) == 1 else await real(self)

    monkeypatch.setattr(overlay.Overlay, "delivered", moving)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        started = ok(
            await http.post("/executed_obs_units/start", json={"obs_unit_id": fresh_obs_unit}),
            201,
        )
        page = ok(await http.get("/executed_obs_units", params={"obs_unit_id": fresh_obs_unit}))
    assert [i["id"] for i in page["items"]] == [started["id"]]
    assert page["total"] == 1
    assert calls == ["delivered", "delivered"]
