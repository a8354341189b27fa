"""The local two-site stack from the command line: ``stack up|down|status``, ``wan set``.
The stack itself is ``ccat_api.devstack.stack``; these commands start it and reach it through
the state file it writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

stack_app = typer.Typer(no_args_is_help=True, help="The local two-site stack.")
wan_app = typer.Typer(no_args_is_help=True, help="Control the running stack's WAN simulator.")

# Where `stack up` says what it started, for `stack status|down` and `wan set`.
STACK_STATE = Path(
    os.environ.get("CCAT_STACK_STATE", Path.home() / ".cache" / "ccat-api" / "stack.json")
)


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
    redis_replicas: Annotated[
        int,
        typer.Option(
            help="0: one Redis. N: a primary, N replicas and three Sentinels (from"
            " deploy/redis/), and critical writes wait for a replica"
        ),
    ] = 0,
    sites: Annotated[
        str,
        typer.Option(
            help="Secondary sites, comma-separated (observatory,cornell): each with its own"
            " replica, Redis, WAN link, gateway and processor. The demo plays at the first."
        ),
    ] = "",
    main_standby: Annotated[
        bool,
        typer.Option(
            help="Main as a primary and an asynchronous streaming standby, reached through a"
            " multi-host address; the site keeps applied envelopes until the standby has them"
        ),
    ] = False,
) -> None:
    """Start main PostgreSQL, a streaming replica, Redis, the WAN simulator and both
    gateways; play the demo; keep running until Ctrl-C."""
    from ccat_api.devstack.demo import run_demo
    from ccat_api.devstack.stack import Stack, StackConfig

    stack = Stack(
        StackConfig(
            wan_delay_ms=wan_delay_ms,
            replica_via_wan=replica_via_wan,
            redis_replicas=redis_replicas,
            main_standby=main_standby,
            sites=tuple(name.strip() for name in sites.split(",") if name.strip()),
        )
    )
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


def _running_stack() -> dict[str, Any]:
    """The running stack's state file, or one line and exit 1 when none runs."""
    if not STACK_STATE.exists():
        typer.echo("no stack running", err=True)
        raise typer.Exit(code=1)
    state: dict[str, Any] = json.loads(STACK_STATE.read_text())
    return state


@stack_app.command("down")
def stack_down(
    timeout_s: Annotated[float, typer.Option(help="How long to wait for it to stop")] = 60.0,
) -> None:
    """Stop a stack started with `stack up` in another terminal (everything is removed)."""
    pid = int(_running_stack()["pid"])
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
def stack_status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stack's description as JSON")
    ] = False,
) -> None:
    """Where the running stack's services are: main, then every secondary site."""
    state = _running_stack()
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    gateways = state.get("gateways", {})
    typer.echo(f"main           {state['main_db']}  gateway {gateways.get('main', '-')}")
    for name, site in state.get("sites", {}).items():
        typer.echo(
            f"{name:<14} replica {site['replica']}  redis {site['redis']}"
            f"  gateway {gateways.get(name, '-')}  wan {site['wan_control']}"
        )


@wan_app.command("set")
def wan_set(
    delay_ms: Annotated[int | None, typer.Option(help="One-way delay")] = None,
    down: Annotated[bool, typer.Option("--down", help="Start an outage")] = False,
    up: Annotated[bool, typer.Option("--up", help="End the outage")] = False,
    bandwidth_mbit: Annotated[
        float | None,
        typer.Option(help="Bandwidth each way in Mbit/s, shared by the link's connections"),
    ] = None,
    unlimited: Annotated[
        bool, typer.Option("--unlimited", help="Lift the bandwidth limit")
    ] = False,
    site: Annotated[
        str | None, typer.Option(help="Whose link (a secondary site's name); default: the first")
    ] = None,
) -> None:
    """Change the running stack's WAN (one site's link): delay, bandwidth, outage on/off."""
    from ccat_api.devstack.wan import WanControl

    state = _running_stack()
    if site is not None and site not in state.get("sites", {}):
        known = ", ".join(state.get("sites", {})) or "none"
        typer.echo(f"no site {site!r} in the running stack (sites: {known})", err=True)
        raise typer.Exit(code=1)
    control = WanControl(
        state["sites"][site]["wan_control"] if site is not None else state["wan_control"]
    )
    if delay_ms is not None:
        control.set_delay(delay_ms)
    if bandwidth_mbit is not None or unlimited:
        control.set_bandwidth(None if unlimited else bandwidth_mbit)
    if down:
        control.down()
    if up:
        control.up()
    typer.echo(json.dumps(control.state(), indent=2))
