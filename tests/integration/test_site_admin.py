"""``ccat-api site add|remove`` against the stack's main, as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
import uuid

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.support import client, fetchval, ok, serve


def ccat_api(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = stack.env_for(stack.settings_overrides("main", secondary=False))
    return subprocess.run(
        [sys.executable, "-m", "ccat_api", "site", *args,
         "--admin-url", stack.main_db.url(user="postgres")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_a_site_is_added_with_its_slot_and_token_and_removed_without_a_trace(
    stack: Stack, main_settings: Settings
) -> None:
    site = f"s{uuid.uuid4().hex[:10]}"
    added = ccat_api(stack, "add", site)
    assert added.returncode == 0, added.stderr
    assert f"slot {site}_slot made" in added.stdout
    token = next(
        line.strip() for line in added.stdout.splitlines() if line.strip().startswith("ccat_")
    )
    dsn = stack.main_db.dsn(user="postgres")
    # The slot keeps WAL from now on, before the site's replica first connects.
    assert await fetchval(
        dsn, "SELECT restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1",
        f"{site}_slot",
    )  # fmt: skip
    async with serve(main_settings) as base, client(base, token) as http:
        me = ok(await http.get("/auth/me"))
    assert me["login"] == f"site-{site}"
    assert me["role"] == "service"

    # Main's bookkeeping of the site, as its processor leaves it; a pending backlog refuses.
    await fetchval(dsn, "INSERT INTO replay_fences (site, epoch) VALUES ($1, 3)", site)
    await fetchval(
        dsn,
        "INSERT INTO site_backlogs (site, code_version, pending) VALUES ($1, 1, 5)",
        site,
    )
    refused = ccat_api(stack, "remove", site)
    assert refused.returncode == 1
    assert "5 pending transactions" in refused.stderr
    assert (
        await fetchval(
            dsn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", f"{site}_slot"
        )
        == 1
    )

    removed = ccat_api(stack, "remove", site, "--force")
    assert removed.returncode == 0, removed.stderr
    for sql in (
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 || '_slot'",
        "SELECT count(*) FROM replay_fences WHERE site = $1",
        "SELECT count(*) FROM site_backlogs WHERE site = $1",
    ):
        assert await fetchval(dsn, sql, site) == 0, sql


def test_a_site_name_that_cannot_name_a_slot_is_refused(stack: Stack) -> None:
    refused = ccat_api(stack, "add", "Bad_Name")
    assert refused.returncode == 2
    assert "lower-case letters" in refused.stderr
