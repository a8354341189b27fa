"""``ccat-api site add|remove``: what main keeps for a secondary site.

Adding makes the site's replication slot (WAL kept for its replica from now on, through its
outages up to max_slot_wal_keep_size) and a service account with a token for its
instruments, then prints the steps left at the site. Removing drops the slot (or main keeps
WAL for it forever) and main's bookkeeping of the site: its replay fence, watermark and
backlog report. Slots need a role with REPLICATION (or a superuser): ``--admin-url``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import asyncpg
import typer

from ccat_api.config import load_settings
from ccat_api.runtime import plain_dsn

site_app = typer.Typer(no_args_is_help=True, help="Add or remove a secondary site (on main).")

# As the site_name setting allows; a slot name cannot hold "-", so it becomes "_" there.
SITE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def slot_name(site: str) -> str:
    return f"{site.replace('-', '_')}_slot"


def _checked(site: str) -> str:
    if not SITE_NAME.fullmatch(site):
        raise typer.BadParameter(
            "a site name is lower-case letters, digits, _ and -, starting with a letter"
            " (it names the site's replication slot and its Redis keys)",
            param_hint="NAME",
        )
    return site


AdminUrl = Annotated[
    str | None,
    typer.Option(help="Main as a role that may make replication slots (default: CCAT_MAIN_DB_URL)"),
]


@site_app.command("add")
def site_add(
    name: Annotated[str, typer.Argument(help="The site's name (its CCAT_SITE_NAME)")],
    admin_url: AdminUrl = None,
) -> None:
    """Make main ready for a new secondary site and print what is left to do there."""
    site = _checked(name)
    settings = load_settings()
    dsn = plain_dsn(admin_url or settings.main_db_url)

    async def add() -> tuple[bool, str]:
        from ccat_api.auth.tokens import issue_service_token
        from ccat_api.cli.accounts import on_main

        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            made = await conn.fetchval(
                "SELECT pg_create_physical_replication_slot($1, true) IS NOT NULL"
                " WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                slot_name(site),
            )
        finally:
            await conn.close()
        issued = await on_main(
            settings,
            "ccat-api site add",
            lambda db: issue_service_token(db, f"site-{site}", "service"),
        )
        return bool(made), issued.plaintext

    made, token = asyncio.run(add())
    typer.echo(
        f"slot {slot_name(site)} {'made' if made else 'already there'}; service account"
        f" site-{site} with a token for the site's instruments (shown once):\n  {token}\n"
    )
    typer.echo(
        "At the site (deploy/README.md, 'Adding a secondary site'):\n"
        f"  1. pg_basebackup -h MAIN -U replicator -D $PGDATA -X stream -S {slot_name(site)}"
        " (no -C: the slot is made), touch $PGDATA/standby.signal, include standby.conf with"
        f" primary_slot_name = '{slot_name(site)}' and application_name={site}\n"
        f"  2. /etc/ccat-api/secondary.env: CCAT_SITE_NAME={site}, CCAT_MAIN_DB_URL (every"
        " main node), CCAT_LOCAL_DB_URL, CCAT_REDIS_SENTINELS or CCAT_REDIS_URL\n"
        "  3. systemctl enable --now ccat-api-gateway@secondary ccat-api-processor\n"
        "  4. the instruments send the token above as `Authorization: Bearer ...`"
    )


@site_app.command("remove")
def site_remove(
    name: Annotated[str, typer.Argument(help="The site's name")],
    admin_url: AdminUrl = None,
    force: Annotated[
        bool, typer.Option(help="Remove even if the site last reported pending transactions")
    ] = False,
) -> None:
    """Forget a secondary site on main: drop its slot and its bookkeeping."""
    site = _checked(name)
    settings = load_settings()
    dsn = plain_dsn(admin_url or settings.main_db_url)

    async def remove() -> str:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            pending = await conn.fetchval("SELECT pending FROM site_backlogs WHERE site = $1", site)
            if pending and not force:
                return (
                    f"site {site!r} last reported {pending} pending transactions: let it"
                    " drain first (or --force, and they are never applied)"
                )
            active = await conn.fetchval(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot_name(site)
            )
            if active:
                return f"slot {slot_name(site)} is in use: stop the site's replica first"
            async with conn.transaction():
                if active is not None:
                    await conn.execute("SELECT pg_drop_replication_slot($1)", slot_name(site))
                for table in ("replay_fences", "replay_watermarks", "site_backlogs"):
                    await conn.execute(f"DELETE FROM {table} WHERE site = $1", site)  # noqa: S608
        finally:
            await conn.close()
        return ""

    refused = asyncio.run(remove())
    if refused:
        typer.echo(refused, err=True)
        raise typer.Exit(1)
    typer.echo(
        f"site {site!r} removed from main: slot dropped, fence, watermark and backlog report"
        f" deleted. Revoke its tokens with `ccat-api tokens list --user site-{site}`."
    )
