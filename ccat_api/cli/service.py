"""Running a site: ``serve``, ``process``, ``migrate``, ``seed``, ``config example``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Annotated

import typer
from rich.markup import escape

from ccat_api.buffering.worker import SiteWorker
from ccat_api.cli.accounts import on_main
from ccat_api.cli.terminal import err
from ccat_api.config import Settings, load_settings, render_env_example
from ccat_api.live.frames import SERVER_OPTIONS
from ccat_api.logs import configure_logging

config_app = typer.Typer(no_args_is_help=True, help="The settings and their defaults.")


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the gateway (the site type comes from the configuration)."""
    import shutil
    import tempfile

    import uvicorn

    # Each worker loads the settings again (the app factory); the prefix and TLS are the
    # server's.
    settings = load_settings()
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
            root_path=settings.root_path,
            # HTTPS when both are set (the settings refuse one without the other).
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=False,
            # Monitors' frames written once for all of them, uncompressed (live/frames.py).
            **SERVER_OPTIONS,
        )
    finally:
        # Only a directory we made: one named by the operator may be shared or inspected.
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


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
    from ccat_api.runtime import build_worker, site_redis

    redis = site_redis(settings)
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


def migrate(
    revision: Annotated[
        str,
        typer.Option(
            "--to",
            help="Stop at this revision (an expand step) instead of the newest (head)",
        ),
    ] = "head",
    max_report_age_s: Annotated[
        float,
        typer.Option(
            help="A contract step trusts a site's backlog report only this recent (seconds)"
        ),
    ] = 600.0,
) -> None:
    """Bring the main database to the newest schema (or to --to REVISION).

    A contract step that would strand envelopes a site still holds is refused whole, naming
    the site; run it again once the sites have drained."""
    from ccat_api.db import migrate as migrations
    from ccat_api.db.contract import ContractRefused

    try:
        migrations.upgrade(
            load_settings().main_db_url, revision, contract_max_report_age_s=max_report_age_s
        )
    except ContractRefused as exc:
        err.print(f"[red]refused[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    typer.echo(
        "main database is at the newest schema"
        if revision == "head"
        else f"main database is at {revision}"
    )


def seed() -> None:
    """Load the reference data (sites, instruments, programs, obs units) into main."""
    from ccat_api.db.seed import seed as run_seed

    asyncio.run(on_main(load_settings(), "seed", run_seed))
    typer.echo("seeded")


@config_app.command("example")
def config_example() -> None:
    """Print .env.example: every setting, its description and default (`make env-example`)."""
    typer.echo(render_env_example(), nl=False)
