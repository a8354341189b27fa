"""The ``ccat-api`` command: serve, process, migrate, seed, tokens, users, stack, wan,
status, dead-letters.

ccat-api stack up                               the local two-site stack with the demo
ccat-api serve                                  a gateway for the configured site
ccat-api process [--burst]                      the processor and LSN tracker alone
ccat-api tokens create --user LOGIN [--role R]  a token (creates the service account)
ccat-api status [--watch]                       a site at a glance (via its gateway)
ccat-api dead-letters list|show|retry|discard   act on dead letters (via its gateway)
ccat-api config example                         .env.example, from the Settings model
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings, load_settings, render_env_example
from ccat_api.db.engines import PrimaryDatabase
from ccat_api.errors import CcatError
from ccat_api.logs import configure_logging
from ccat_api.operator_cli import dead_letters_app
from ccat_api.operator_cli import status as operator_status

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
tokens_app = typer.Typer(no_args_is_help=True, help="Create and revoke API tokens (on main).")
stack_app = typer.Typer(no_args_is_help=True, help="The local two-site stack.")
wan_app = typer.Typer(no_args_is_help=True, help="Control the running stack's WAN simulator.")
users_app = typer.Typer(no_args_is_help=True, help="Service accounts and users (on main).")
config_app = typer.Typer(no_args_is_help=True, help="The settings and their defaults.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(stack_app, name="stack")
app.add_typer(wan_app, name="wan")
app.add_typer(users_app, name="users")
app.add_typer(config_app, name="config")
app.add_typer(dead_letters_app, name="dead-letters")
app.command("status")(operator_status)

# Where `stack up` says what it started, for `stack status|down` and `wan set`.
STACK_STATE = Path(
    os.environ.get("CCAT_STACK_STATE", Path.home() / ".cache" / "ccat-api" / "stack.json")
)


def main() -> None:
    app()


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the gateway (the site type comes from the configuration)."""
    import shutil
    import tempfile

    import uvicorn

    made_metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics where any of them can merge them for a scrape.
        made_metrics_dir = tempfile.mkdtemp(prefix="ccat-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_metrics_dir
    try:
        uvicorn.run(
            "ccat_api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=False,
            # Monitor frames are ~150 bytes: compressing each one for each monitor cost a
            # third of the fan-out CPU (bench/ws_fanout.py) and saves next to nothing.
            ws_per_message_deflate=False,
        )
    finally:
        # Only a directory we made: one named by the operator may be shared or inspected.
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


@app.command()
def process(
    burst: Annotated[
        bool, typer.Option(help="Drain the buffer and wait until it is visible, then exit")
    ] = False,
    timeout_s: Annotated[float, typer.Option(help="With --burst: give up after this")] = 600.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this processor's replay metrics for Prometheus on this port"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run the processor and LSN tracker for this (secondary) site without the HTTP server."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if not settings.is_secondary:
        raise typer.BadParameter("the processor runs at secondary sites only")
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from ccat_api.live.metrics import processor_registry

        # Batch size and duration histograms; the site-wide figures are on any gateway.
        start_http_server(metrics_port, addr=metrics_host, registry=processor_registry())
    asyncio.run(_process(settings, burst=burst, timeout_s=timeout_s))


async def _process(settings: Settings, *, burst: bool, timeout_s: float) -> None:
    from ccat_api.runtime import build_worker, make_redis

    redis = make_redis(settings.redis_url)
    worker = build_worker(settings, redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if burst:
            await _drain(worker, timeout_s)
        else:
            await worker.run(stop)
    finally:
        await redis.aclose()


async def _drain(worker: SiteWorker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        settled = await worker.processor.run_once()
        await worker.tracker.run_once()
        stats_depth = await worker.processor.backlog()
        if settled == 0 and stats_depth == (0, 0):
            return
        if settled == 0:
            await asyncio.sleep(0.02)
    raise SystemExit("burst: timed out before the buffer drained")


@app.command()
def migrate() -> None:
    """Bring the main database to the newest schema."""
    from ccat_api.db import migrate as migrations

    migrations.upgrade(load_settings().main_db_url)
    typer.echo("main database is at the newest schema")


@app.command()
def seed() -> None:
    """Load the reference data (sites, instruments, programs, obs units) into main."""
    from ccat_api.db.seed import seed as run_seed

    settings = load_settings()

    async def go() -> None:
        db = _main_database(settings, "seed")
        try:
            await run_seed(db)
        finally:
            await db.dispose()

    asyncio.run(go())
    typer.echo("seeded")


def _main_database(settings: Settings, purpose: str) -> PrimaryDatabase:
    from ccat_api.db.engines import make_engine

    return PrimaryDatabase(
        make_engine(
            settings.main_db_url, pool_size=1, connect_timeout_s=10, application_name=purpose
        )
    )


async def _on_main(
    settings: Settings, purpose: str, work: Callable[[PrimaryDatabase], Awaitable[T]]
) -> T:
    db = _main_database(settings, purpose)
    try:
        return await work(db)
    finally:
        await db.dispose()


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="Login of the user or service account")],
    role: Annotated[
        str | None,
        typer.Option(help="Create the service account with this role if it does not exist"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="What the token is for")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="Limit the token to a permission (repeatable)")
    ] = None,
    expires_days: Annotated[int | None, typer.Option(help="Lifetime in days")] = None,
) -> None:
    """Create a token on main; the secret is printed once and never stored."""
    import sqlalchemy as sa

    from ccat_api.auth.tokens import ensure_service_account, issue_token
    from ccat_api.db.models import User

    settings = load_settings()
    expires_at = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def work(db: PrimaryDatabase) -> str:
        if role is not None:
            user_id = await ensure_service_account(db, user, role)
        else:
            async with db.connect() as conn:
                found = await conn.scalar(sa.select(User.id).where(User.login == user))
            if found is None:
                raise typer.BadParameter(f"no user {user!r}; pass --role to create it")
            user_id = int(found)
        issued = await issue_token(
            db, user_id=user_id, name=name or user, scopes=scope or None, expires_at=expires_at
        )
        return issued.plaintext

    try:
        typer.echo(asyncio.run(_on_main(settings, "tokens", work)))
    except CcatError as exc:
        raise typer.BadParameter(exc.message) from None


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens")] = None,
) -> None:
    """Tokens on main (never their secrets)."""
    import sqlalchemy as sa

    from ccat_api.db.models import ApiToken, User

    settings = load_settings()

    async def work(db: PrimaryDatabase) -> list[Any]:
        query = (
            sa.select(
                ApiToken.id, User.login, ApiToken.name, ApiToken.prefix, ApiToken.scopes,
                ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
            )
            .join(User, User.id == ApiToken.user_id)
            .order_by(ApiToken.id)
        )  # fmt: skip
        if user is not None:
            query = query.where(User.login == user)
        async with db.connect() as conn:
            return list(await conn.execute(query))

    for row in asyncio.run(_on_main(settings, "tokens", work)):
        state = "revoked" if row.revoked_at else "active"
        scopes = ",".join(row.scopes) if row.scopes is not None else "(role)"
        typer.echo(
            f"{row.id:>5}  {row.login:<24} {row.prefix}  {state:<7} scopes={scopes}"
            f"  last_used={row.last_used_at or '-'}  name={row.name}"
        )


@tokens_app.command("revoke")
def tokens_revoke(prefix: Annotated[str, typer.Argument(help="The token's public prefix")]) -> None:
    """Revoke a token by its prefix (the part after ``ccat_``)."""
    from ccat_api.auth.tokens import revoke_token_by_prefix

    settings = load_settings()
    if not asyncio.run(_on_main(settings, "tokens", lambda db: revoke_token_by_prefix(db, prefix))):
        typer.echo(f"no active token with prefix {prefix}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {prefix}")


@users_app.command("create")
def users_create(
    login: Annotated[str, typer.Argument(help="The service account's login")],
    role: Annotated[str, typer.Option(help="admin | operator | service | observer | viewer")],
    name: Annotated[str, typer.Option(help="A readable name")] = "",
) -> None:
    """Create a service account (people are created when they first log in with GitHub)."""
    from ccat_api.auth.users import create_service_account

    settings = load_settings()
    try:
        row = asyncio.run(
            _on_main(settings, "users", lambda db: create_service_account(db, login, role, name))
        )
    except CcatError as exc:
        raise typer.BadParameter(exc.message) from None
    typer.echo(f"created user {row.id} {row.login} ({row.role})")


@users_app.command("list")
def users_list() -> None:
    """Users and service accounts on main."""
    import sqlalchemy as sa

    from ccat_api.auth.users import USER_COLUMNS

    settings = load_settings()

    async def work(db: PrimaryDatabase) -> list[Any]:
        async with db.connect() as conn:
            return list(await conn.execute(sa.select(*USER_COLUMNS).order_by(USER_COLUMNS[0])))

    for row in asyncio.run(_on_main(settings, "users", work)):
        status = "active" if row.active else "disabled"
        typer.echo(f"{row.id:>5}  {row.login:<24} {row.role:<9} {status}")


@config_app.command("example")
def config_example() -> None:
    """Print .env.example: every setting, its description and default (`make env-example`)."""
    typer.echo(render_env_example(), nl=False)


@stack_app.command("up")
def stack_up(
    exit_after_demo: Annotated[
        bool, typer.Option(help="Stop everything after the demo (smoke tests, CI)")
    ] = False,
    demo: Annotated[bool, typer.Option(help="Play the scripted demo")] = True,
    wan_delay_ms: Annotated[int, typer.Option(help="One-way WAN delay")] = 100,
    replica_via_wan: Annotated[
        bool, typer.Option(help="Stream replication through the WAN simulator")
    ] = True,
) -> None:
    """Start main PostgreSQL, a streaming replica, Redis, the WAN simulator and both
    gateways; play the demo; keep running until Ctrl-C."""
    from ccat_api.devstack.demo import run_demo
    from ccat_api.devstack.stack import Stack, StackConfig

    stack = Stack(StackConfig(wan_delay_ms=wan_delay_ms, replica_via_wan=replica_via_wan))
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    try:
        started = time.monotonic()
        stack.up(progress=lambda m: typer.echo(f"  starting {m}"))
        stack.write_state(STACK_STATE)
        typer.echo(f"stack up in {time.monotonic() - started:.1f}s")
        typer.echo(json.dumps(stack.describe(), indent=2))
        if demo:
            run_demo(stack)
        if exit_after_demo:
            return
        typer.echo("stack running; Ctrl-C stops it")
        while not stop_requested:
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        stack.down()
        with contextlib.suppress(FileNotFoundError):
            STACK_STATE.unlink()
        typer.echo("stack stopped and removed")


@stack_app.command("down")
def stack_down(
    timeout_s: Annotated[float, typer.Option(help="How long to wait for it to stop")] = 60.0,
) -> None:
    """Stop a stack started with `stack up` in another terminal (everything is removed)."""
    if not STACK_STATE.exists():
        typer.echo("no stack running", err=True)
        raise typer.Exit(code=1)
    pid = int(json.loads(STACK_STATE.read_text())["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        STACK_STATE.unlink(missing_ok=True)
        typer.echo("the stack's process was already gone; state file removed")
        return
    deadline = time.monotonic() + timeout_s
    while STACK_STATE.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if STACK_STATE.exists():
        typer.echo(f"stack (pid {pid}) did not stop within {timeout_s:.0f}s", err=True)
        raise typer.Exit(code=1)
    typer.echo("stack stopped and removed")


@stack_app.command("status")
def stack_status() -> None:
    """Where the running stack's services are."""
    if not STACK_STATE.exists():
        typer.echo("no stack running", err=True)
        raise typer.Exit(code=1)
    typer.echo(STACK_STATE.read_text())


@wan_app.command("set")
def wan_set(
    delay_ms: Annotated[int | None, typer.Option(help="One-way delay")] = None,
    down: Annotated[bool, typer.Option("--down", help="Start an outage")] = False,
    up: Annotated[bool, typer.Option("--up", help="End the outage")] = False,
) -> None:
    """Change the running stack's WAN: delay, outage on/off."""
    from ccat_api.devstack.wan import WanControl

    if not STACK_STATE.exists():
        typer.echo("no stack running", err=True)
        raise typer.Exit(code=1)
    control = WanControl(json.loads(STACK_STATE.read_text())["wan_control"])
    if delay_ms is not None:
        control.set_delay(delay_ms)
    if down:
        control.down()
    if up:
        control.up()
    typer.echo(json.dumps(control.state(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
