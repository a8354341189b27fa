"""The ``ccat-api`` command: serve, process, migrate, seed, tokens, stack, wan.

ccat-api stack up            the local two-site stack with the demo (Ctrl-C stops it)
ccat-api serve               a gateway for the site the configuration describes
ccat-api process [--burst]   the processor and LSN tracker without the HTTP server
ccat-api tokens create --name NAME --role ROLE
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings, load_settings
from ccat_api.db.engines import PrimaryDatabase

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
tokens_app = typer.Typer(no_args_is_help=True, help="Create and revoke API tokens (on main).")
stack_app = typer.Typer(no_args_is_help=True, help="The local two-site stack.")
wan_app = typer.Typer(no_args_is_help=True, help="Control the running stack's WAN simulator.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(stack_app, name="stack")
app.add_typer(wan_app, name="wan")

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
    import uvicorn

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
    )


@app.command()
def process(
    burst: Annotated[
        bool, typer.Option(help="Drain the buffer and wait until it is visible, then exit")
    ] = False,
    timeout_s: Annotated[float, typer.Option(help="With --burst: give up after this")] = 600.0,
) -> None:
    """Run the processor and LSN tracker for this (secondary) site without the HTTP server."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not settings.is_secondary:
        raise typer.BadParameter("the processor runs at secondary sites only")
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


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token")],
    role: Annotated[str, typer.Option(help="admin | operator | viewer")],
    expires_days: Annotated[int | None, typer.Option(help="Lifetime in days")] = None,
) -> None:
    """Create a token on main; the secret is printed once and never stored."""
    from ccat_api.auth.tokens import issue_token
    from ccat_api.db.models import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter(f"role must be one of {[r.value for r in Role]}") from None
    settings = load_settings()
    expires_at = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def go() -> str:
        db = _main_database(settings, "tokens")
        try:
            issued = await issue_token(db, name=name, role=chosen, expires_at=expires_at)
        finally:
            await db.dispose()
        return issued.plaintext

    typer.echo(asyncio.run(go()))


@tokens_app.command("revoke")
def tokens_revoke(prefix: Annotated[str, typer.Argument(help="The token's public prefix")]) -> None:
    """Revoke a token by its prefix (the part after ``ccat_``)."""
    from ccat_api.auth.tokens import revoke_token

    settings = load_settings()

    async def go() -> bool:
        db = _main_database(settings, "tokens")
        try:
            return await revoke_token(db, prefix)
        finally:
            await db.dispose()

    if not asyncio.run(go()):
        raise typer.Exit(code=1)
    typer.echo(f"revoked {prefix}")


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
