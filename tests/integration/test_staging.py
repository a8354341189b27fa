"""Staging jobs and long-term-archive transfers: driven from main and written there directly
from any site. Their state machines, the roles their locations must have, only archived
packages staged, 404 for unknown ids, list filters, order and pages, and 503 with
Retry-After from a secondary site while main is unreachable."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import (
    all_pages,
    client,
    complete_package,
    fetch,
    fetchval,
    in_list_order,
    ok,
    replica_paused,
    serve,
    start_transfer,
)

PROCESSING, ARCHIVE = 5, 3  # seeded: cornell-processing, cologne-archive (long-term)
JOBS = "/api/staging/jobs"
ARCHIVE_TRANSFERS = "/api/transfer/archive"

# The moves each state machine allows, written out here rather than read from the code.
STAGING_MOVES = {
    ("pending", "staging"), ("pending", "cancelled"), ("pending", "failed"),
    ("staging", "completed"), ("staging", "failed"), ("staging", "cancelled"),
}  # fmt: skip
# How to bring a new job to each state.
STAGING_PATHS = {
    "pending": [], "staging": ["staging"], "completed": ["staging", "completed"],
    "failed": ["staging", "failed"], "cancelled": ["cancelled"],
}  # fmt: skip
ARCHIVE_MOVES = {
    ("pending", "in_progress"), ("pending", "failed"), ("in_progress", "completed"),
    ("in_progress", "failed"), ("failed", "pending"),
}  # fmt: skip
ARCHIVE_PATHS = {
    "pending": [], "in_progress": ["in_progress"], "completed": ["in_progress", "completed"],
    "failed": ["failed"],
}  # fmt: skip


def with_error(status: str) -> dict[str, Any]:
    return (
        {"status": status, "error": "tape robot jammed"}
        if status == "failed"
        else {"status": status}
    )


def refused(response: httpx.Response, status: int, field: str, *named: str) -> None:
    """A refusal with ``status``, naming ``field`` and every one of ``named`` in its detail."""
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field, answer
    for text in (field, *named):
        assert text in answer["detail"], answer


async def archived_package(http: httpx.AsyncClient, name: str) -> str:
    """A package sent to the Cologne archive and arrived there (written at main)."""
    _, package = await complete_package(http, name)
    transfer = await start_transfer(http, package)
    ok(await http.put(f"/api/transfer/transfers/{transfer}", json={"status": "completed"}))
    assert ok(await http.get(f"/raw_data_package/{package}"))["status"] == "archived"
    return package


async def test_staging_jobs_move_only_along_their_state_machine(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        package = await archived_package(http, f"sm-{uuid.uuid4().hex[:12]}")
        body = {"raw_data_package_ids": [package], "destination_location_id": PROCESSING}
        for start, path in STAGING_PATHS.items():
            for target in ("staging", "completed", "failed", "cancelled"):
                job = ok(await http.post(JOBS, json=body), 201)
                assert job["status"] == "pending"
                for step in path:
                    ok(await http.put(f"{JOBS}/{job['id']}", json=with_error(step)))
                r = await http.put(f"{JOBS}/{job['id']}", json=with_error(target))
                now = ok(await http.get(f"{JOBS}/{job['id']}"))
                if (start, target) in STAGING_MOVES:
                    assert r.status_code == 200, (start, target, r.text)
                    assert r.json()["status"] == now["status"] == target
                    expected_error = "tape robot jammed" if target == "failed" else None
                    assert now["error"] == expected_error
                else:
                    refused(r, 409, "status", start, target)
                    assert now["status"] == start
        job = ok(await http.post(JOBS, json=body), 201)
        refused(await http.put(f"{JOBS}/{job['id']}", json={"status": "failed"}), 422, "error")
        assert ok(await http.get(f"{JOBS}/{job['id']}"))["status"] == "pending"


async def test_only_archived_packages_on_main_are_staged_to_a_processing_location(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    dsn = stack.main_db.dsn()
    async with (
        serve(main_settings) as url,
        client(url, tokens.operator) as http,
        serve(secondary_settings) as site_url,
        client(site_url, tokens.operator) as site,
    ):
        archived = await archived_package(http, f"a-{uuid.uuid4().hex[:12]}")
        _, complete = await complete_package(http, f"c-{uuid.uuid4().hex[:12]}")
        # Buffered at the secondary site, not on main yet (no processor runs there).
        _, buffered = await complete_package(site, f"b-{uuid.uuid4().hex[:12]}")
        unknown = str(uuid.uuid4())
        jobs_before = await fetchval(dsn, "SELECT count(*) FROM staging_jobs")

        def job(*packages: str, destination: int = PROCESSING) -> dict[str, Any]:
            return {"raw_data_package_ids": list(packages), "destination_location_id": destination}

        not_archived = await http.post(JOBS, json=job(archived, complete))
        refused(not_archived, 409, "raw_data_package_ids", complete, "complete")
        assert archived not in not_archived.json()["detail"]
        refused(await http.post(JOBS, json=job(unknown)), 422, "raw_data_package_ids", unknown)
        refused(
            await http.post(JOBS, json=job(archived, unknown)), 422, "raw_data_package_ids", unknown
        )
        refused(await site.post(JOBS, json=job(buffered)), 422, "raw_data_package_ids", buffered)
        refused(
            await http.post(JOBS, json=job(archived, destination=ARCHIVE)),
            422,
            "destination_location_id",
            "cologne-archive",
            "processing",
        )
        refused(
            await http.post(JOBS, json=job(archived, destination=999_999)),
            422,
            "destination_location_id",
            "999999",
        )
        async with client(url, tokens.viewer) as viewer:
            forbidden = await viewer.post(JOBS, json=job(archived))
            assert forbidden.status_code == 403
            assert "manage:staging" in forbidden.json()["detail"]
        assert await fetchval(dsn, "SELECT count(*) FROM staging_jobs") == jobs_before

        me = ok(await http.get("/auth/me"))
        created = ok(await http.post(JOBS, json=job(archived, archived)), 201)
        assert created["raw_data_package_ids"] == [archived]
        assert (created["status"], created["requested_by"]) == ("pending", me["login"])
        assert created["destination_location_id"] == PROCESSING
        got = ok(await http.get(f"{JOBS}/{created['id']}"))
        assert got == {**created, "raw_data_package_ids": [archived]}
        rows = await fetch(
            dsn,
            "SELECT raw_data_package_id::text FROM staging_job_packages"
            " WHERE staging_job_id = $1::uuid",
            created["id"],
        )
        assert [r[0] for r in rows] == [archived]
        # Also from the secondary site, straight to main, then readable there once replicated.
        from_site = ok(await site.post(JOBS, json=job(archived)), 201)
        stack.wait_replica_caught_up()
        assert ok(await site.get(f"{JOBS}/{from_site['id']}"))["raw_data_package_ids"] == [archived]

        for reader in (http, site):
            for method, body in (("GET", None), ("PUT", {"status": "staging"})):
                r = await reader.request(method, f"{JOBS}/{unknown}", json=body)
                assert r.status_code == 404, r.text
                assert unknown in r.json()["detail"]


async def test_archive_transfers_go_to_a_long_term_archive_along_their_state_machine(
    stack: Stack, tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        _, package = await complete_package(http, f"lta-{uuid.uuid4().hex[:12]}")
        unknown = str(uuid.uuid4())

        def body(location: int = ARCHIVE, of: str = package) -> dict[str, Any]:
            return {"raw_data_package_id": of, "data_location_id": location}

        refused(
            await http.post(ARCHIVE_TRANSFERS, json=body(PROCESSING)),
            422,
            "data_location_id",
            "cornell-processing",
            "long_term_archive",
        )
        refused(await http.post(ARCHIVE_TRANSFERS, json=body(999_999)), 422, "data_location_id")
        refused(
            await http.post(ARCHIVE_TRANSFERS, json=body(of=unknown)), 422, "raw_data_package_id"
        )
        async with client(url, tokens.observer) as observer:
            forbidden = await observer.post(ARCHIVE_TRANSFERS, json=body())
            assert forbidden.status_code == 403
            assert "manage:catalog" in forbidden.json()["detail"]
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT count(*) FROM long_term_archive_transfers"
                " WHERE raw_data_package_id = $1::uuid",
                package,
            )
            == 0
        )

        for start, path in ARCHIVE_PATHS.items():
            for target in ("pending", "in_progress", "completed", "failed"):
                made = ok(await http.post(ARCHIVE_TRANSFERS, json=body()), 201)
                assert (made["status"], made["completed_at"]) == ("pending", None)
                for step in path:
                    ok(await http.patch(f"{ARCHIVE_TRANSFERS}/{made['id']}", json=with_error(step)))
                r = await http.patch(f"{ARCHIVE_TRANSFERS}/{made['id']}", json=with_error(target))
                now = ok(await http.get(f"{ARCHIVE_TRANSFERS}/{made['id']}"))
                if (start, target) in ARCHIVE_MOVES:
                    assert r.status_code == 200, (start, target, r.text)
                    assert r.json() == now
                    assert now["status"] == target
                    assert (now["completed_at"] is not None) == (target == "completed")
                    # A failure says why; a retry starts without the old error.
                    assert now["error"] == ("tape robot jammed" if target == "failed" else None)
                else:
                    refused(r, 409, "status", start, target)
                    assert now["status"] == start
        made = ok(await http.post(ARCHIVE_TRANSFERS, json=body()), 201)
        refused(
            await http.patch(f"{ARCHIVE_TRANSFERS}/{made['id']}", json={"status": "failed"}),
            422,
            "error",
        )
        for method, patch in (("GET", None), ("PATCH", {"status": "in_progress"})):
            r = await http.request(method, f"{ARCHIVE_TRANSFERS}/{unknown}", json=patch)
            assert r.status_code == 404, r.text
            assert unknown in r.json()["detail"]


async def test_staging_and_archive_lists_filter_order_and_page_with_exact_totals(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    dsn = stack.main_db.dsn()
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        package = await archived_package(http, f"l-{uuid.uuid4().hex[:12]}")
        for path in (["staging"], ["staging", "completed"], ["cancelled"], [], ["staging"]):
            job = ok(
                await http.post(
                    JOBS,
                    json={"raw_data_package_ids": [package], "destination_location_id": PROCESSING},
                ),
                201,
            )
            for step in path:
                ok(await http.put(f"{JOBS}/{job['id']}", json={"status": step}))
        archive_ids: dict[str, str] = {}
        for path in ([], ["in_progress"], ["in_progress", "completed"], ["failed"], []):
            made = ok(
                await http.post(
                    ARCHIVE_TRANSFERS,
                    json={"raw_data_package_id": package, "data_location_id": ARCHIVE},
                ),
                201,
            )
            for step in path:
                ok(await http.patch(f"{ARCHIVE_TRANSFERS}/{made['id']}", json=with_error(step)))
            archive_ids[made["id"]] = path[-1] if path else "pending"

        stack.wait_replica_caught_up()
        async with serve(secondary_settings) as site_url, client(site_url, tokens.viewer) as site:
            for reader in (http, site):
                # Staging jobs: the whole table, so main's own rows are the oracle; every
                # filter and order in one page, and pages of a few for one of them.
                for status in (None, "pending", "staging", "completed", "failed", "cancelled"):
                    where = "WHERE status = $1" if status else "WHERE $1::text IS NULL"
                    for order in ("-created_at", "created_at", "-updated_at", "updated_at"):
                        column = order.lstrip("-")
                        direction = "DESC" if order.startswith("-") else "ASC"
                        rows = await fetch(
                            dsn,
                            f"SELECT id::text FROM staging_jobs {where}"
                            f" ORDER BY {column} {direction} NULLS LAST, id",
                            status,
                        )
                        params = {"order": order} | ({"status": status} if status else {})
                        paged = status is None and order == "-updated_at"
                        items, totals = await all_pages(reader, JOBS, params, 4 if paged else 1000)
                        assert [j["id"] for j in items] == [r[0] for r in rows], (status, order)
                        assert totals == {len(rows)}, (status, order)
                default = ok(await reader.get(JOBS, params={"limit": 1000}))
                assert default["items"] == in_list_order(default["items"], "-created_at")

                # Archive transfers of this package: filtered, ordered, paged.
                for status in (None, "pending", "in_progress", "completed", "failed"):
                    want = {i for i, s in archive_ids.items() if status in (None, s)}
                    for order in ("requested_at", "-requested_at", "completed_at", "-completed_at"):
                        params = {"raw_data_package_id": package, "order": order}
                        if status:
                            params["status"] = status
                        items, totals = await all_pages(reader, ARCHIVE_TRANSFERS, params, 2)
                        assert totals == {len(want)}, (status, order)
                        assert sorted(i["id"] for i in items) == sorted(want), (status, order)
                        assert items == in_list_order(items, order), (status, order)
                bad = await reader.get(ARCHIVE_TRANSFERS, params={"order": "status"})
                refused(bad, 422, "order")


async def test_staging_and_archive_writes_answer_503_with_retry_after_while_main_is_away(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        package = await archived_package(http, f"o-{uuid.uuid4().hex[:12]}")
        job = ok(
            await http.post(
                JOBS,
                json={"raw_data_package_ids": [package], "destination_location_id": PROCESSING},
            ),
            201,
        )
        archive = ok(
            await http.post(
                ARCHIVE_TRANSFERS,
                json={"raw_data_package_id": package, "data_location_id": ARCHIVE},
            ),
            201,
        )
    stack.wait_replica_caught_up()
    settings = secondary_settings.model_copy(update={"db_connect_timeout_s": 0.5})
    async with serve(settings) as site_url, client(site_url, tokens.operator, timeout_s=10) as site:
        ok(await site.get("/api/transfer/locations"))  # location roles cached while main is up
        stack.wan.down()
        for method, path, body in (
            ("POST", JOBS, {"raw_data_package_ids": [package], "destination_location_id": 5}),
            ("PUT", f"{JOBS}/{job['id']}", {"status": "staging"}),
            ("POST", ARCHIVE_TRANSFERS, {"raw_data_package_id": package, "data_location_id": 3}),
            ("PATCH", f"{ARCHIVE_TRANSFERS}/{archive['id']}", {"status": "in_progress"}),
        ):
            started = time.monotonic()
            r = await site.request(method, path, json=body)
            assert r.status_code == 503, f"{method} {path} -> {r.status_code} {r.text}"
            assert int(r.headers["Retry-After"]) > 0
            assert time.monotonic() - started < 8, f"{method} {path}"
        # Reads keep working from the site's replica.
        assert ok(await site.get(f"{JOBS}/{job['id']}"))["status"] == "pending"
        assert ok(await site.get(JOBS, params={"status": "pending", "limit": 1000}))["total"] >= 1
        assert ok(await site.get(f"{ARCHIVE_TRANSFERS}/{archive['id']}"))["status"] == "pending"
    stack.wan.up()
    dsn = stack.main_db.dsn()
    assert (
        await fetchval(dsn, "SELECT status FROM staging_jobs WHERE id = $1::uuid", job["id"])
        == "pending"
    )
    assert (
        await fetchval(
            dsn,
            "SELECT count(*) FROM long_term_archive_transfers WHERE raw_data_package_id = $1::uuid",
            package,
        )
        == 1
    )


async def test_a_change_from_a_lagging_site_is_checked_against_main_not_its_replica(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    async with (
        serve(main_settings) as main_url,
        serve(secondary_settings) as site_url,
        client(main_url, tokens.operator) as main,
        client(site_url, tokens.operator) as site,
    ):
        _, package = await complete_package(main, f"lag-{uuid.uuid4().hex[:12]}")
        body = {"raw_data_package_id": package, "data_location_id": ARCHIVE}
        made = ok(await main.post(ARCHIVE_TRANSFERS, json=body), 201)
        stack.wait_replica_caught_up()
        with replica_paused(stack):
            ok(
                await main.patch(
                    f"{ARCHIVE_TRANSFERS}/{made['id']}", json={"status": "in_progress"}
                )
            )
            ok(await main.patch(f"{ARCHIVE_TRANSFERS}/{made['id']}", json={"status": "completed"}))
            # The site's replica still shows it pending, from where in_progress is allowed.
            assert ok(await site.get(f"{ARCHIVE_TRANSFERS}/{made['id']}"))["status"] == "pending"
            r = await site.patch(
                f"{ARCHIVE_TRANSFERS}/{made['id']}", json={"status": "in_progress"}
            )
            refused(r, 409, "status", "completed", "in_progress")
        assert ok(await main.get(f"{ARCHIVE_TRANSFERS}/{made['id']}"))["status"] == "completed"
