"""The processor's reports to main (``buffering/upkeep.py``) trail the replay and never hold
it: a report main is slow to take waits on a connection of its own while batches go on."""

from __future__ import annotations

import asyncpg

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, eventually, fetchval, processing, serve, site_worker, start_eou

APPLIED_SQL = "SELECT count(*) FROM applied_transactions WHERE tx_id = $1::uuid"
REPORT_WAITING_SQL = """
SELECT count(*) FROM pg_stat_activity
 WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%ccat_report_backlog%'
"""


async def test_a_report_main_is_slow_to_take_does_not_hold_the_replay(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    # Timeouts past the test's waits: a report that timed out would free an in-line replay
    # too, and the test could not tell the two apart.
    settings = secondary_settings.model_copy(
        update={
            "backlog_report_interval_s": 0.2,
            "processor_main_timeout_s": 120.0,
            "main_statement_timeout_s": 120.0,
        }
    )
    site = settings.site_name
    main_dsn = stack.main_db.dsn()
    locker = await asyncpg.connect(main_dsn)
    try:
        # The site's backlog row, locked: the processor's next backlog report waits on it.
        await locker.execute(
            "INSERT INTO site_backlogs (site, code_version, pending, reported_at)"
            " VALUES ($1, 1, 0, now()) ON CONFLICT (site) DO NOTHING",
            site,
        )
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT 1 FROM site_backlogs WHERE site = $1 FOR UPDATE", site)
        reported_before = await locker.fetchval(
            "SELECT reported_at FROM site_backlogs WHERE site = $1", site
        )

        async with serve(settings) as url, site_worker(settings) as worker, processing(worker):

            async def report_waits() -> bool:
                waiting = await fetchval(main_dsn, REPORT_WAITING_SQL, f"ccat-processor-{site}")
                return bool(waiting)

            await eventually(report_waits, timeout_s=30)
            async with client(url, tokens.operator) as http:
                written = await start_eou(http)

            async def applied() -> bool:
                return bool(await fetchval(main_dsn, APPLIED_SQL, written["tx_id"]))

            # Replayed while the report still waits for the lock.
            await eventually(applied, timeout_s=30)
            assert await report_waits(), "the report should still be waiting for the lock"
            await lock.rollback()

            async def reported() -> bool:
                at = await fetchval(
                    main_dsn, "SELECT reported_at FROM site_backlogs WHERE site = $1", site
                )
                return bool(at > reported_before)

            await eventually(reported, timeout_s=30)
    finally:
        await locker.close()
