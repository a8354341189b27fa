"""``ccat-api status``: a site at a glance, and a monitoring check by its exit code.

It talks to a gateway over HTTP with the SDK, like the console does, so it works from any
machine that can reach the site's gateway and needs only a token (``read:buffer``); the
thresholds are the status_* settings (``config_status.py``), and ``assessment.py`` judges.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ccat_api.cli.assessment import (
    Assessment,
    Thresholds,
    assess,
    gateway_failed,
    unreachable_s,
)
from ccat_api.cli.terminal import (
    DEFAULT_URL,
    TokenOption,
    UrlOption,
    age,
    err,
    gateway,
    out,
    size,
    when,
)
from ccat_api.client import ApiError, ClientError, ConnectionFailed, SiteStatus, TransactionState
from ccat_api.config import layered_values
from ccat_api.config_status import StatusSettings
from ccat_api.errors import first_line

THRESHOLDS_PANEL = "Thresholds (exit code 1 warning, 2 critical; default: the setting)"


def threshold(help_text: str, setting: str) -> Any:
    """An option that overrides one status_* setting for this run: shown in the thresholds
    panel with the setting's name as its default, since the value comes from there."""
    return typer.Option(help=help_text, rich_help_panel=THRESHOLDS_PANEL, show_default=setting)


def status_table(status: SiteStatus, recent: list[TransactionState]) -> Group:
    """What the console shows, for a terminal."""
    site = Table.grid(padding=(0, 2))
    site.add_column(style="bold")
    site.add_column()
    site.add_row("site", f"{status.site} ({status.site_type})")
    if status.main.get("ok"):
        site.add_row("main", "[green]reachable[/green]")
    else:
        away = unreachable_s(status.main)
        since = f" for {age(away)}" if away is not None else ""
        site.add_row("main", f"[red]unreachable{since}[/red] {status.main.get('error') or ''}")
    if status.redis is not None and not status.redis.ok:
        reason = escape(status.redis.error or "down")
        site.add_row("buffer", f"[red]unavailable[/red] (Redis: {reason})")
    buffer = status.buffer
    if buffer is not None:
        drain = (
            "stalled (nothing draining)"
            if buffer.estimated_drain_s is None
            else age(buffer.estimated_drain_s)
        )
        site.add_row("buffer", f"{buffer.depth} waiting, oldest {age(buffer.oldest_pending_age_s)}")
        site.add_row("drain", f"{drain}; accept {buffer.accept_rate_tx_s or 0:.1f}/s,"
                     f" drain {buffer.drain_rate_tx_s or 0:.1f}/s")  # fmt: skip
        site.add_row("awaiting replica", str(buffer.awaiting_replica))
        dead = f"[red]{buffer.dead_letters}[/red]" if buffer.dead_letters else "0"
        site.add_row("dead letters", dead)
    replica = status.replica
    if replica is not None:
        if replica.ok:
            receive, apply = size(replica.receive_lag_bytes), size(replica.apply_lag_bytes)
            site.add_row(
                "replica lag",
                f"receive {receive}, apply {apply} ({age(replica.apply_lag_s)}),"
                f" WAN delay {age(replica.wan_delay_s)}",
            )
        else:
            site.add_row("replica", f"[red]down[/red] {replica.error or ''}")
    if status.processor is not None:
        site.add_row("processor", status.processor.get("state", "absent"))
    table = Table(title="recent transactions", title_justify="left")
    for column in ("tx_id", "state", "seq", "created", "lsn"):
        table.add_column(column)
    for tx in recent:
        table.add_row(tx.tx_id, tx.state, str(tx.seq), when(tx.created_at), str(tx.lsn or "-"))
    return Group(site, table)


def status(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
    watch: Annotated[bool, typer.Option(help="Refresh until Ctrl-C")] = False,
    interval_s: Annotated[float, typer.Option(help="Refresh period with --watch")] = 2.0,
    recent: Annotated[int, typer.Option(help="How many recent transactions to list")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the table")
    ] = False,
    warn_pending_age_s: Annotated[
        float | None,
        threshold("Warning: the oldest pending write is older", "status_warn_pending_age_s"),
    ] = None,
    critical_pending_age_s: Annotated[
        float | None,
        threshold("Critical: the oldest pending write is older", "status_critical_pending_age_s"),
    ] = None,
    critical_main_unreachable_s: Annotated[
        float | None,
        threshold(
            "Critical: main unreachable from a secondary site for longer (shorter: warning)",
            "status_critical_main_unreachable_s",
        ),
    ] = None,
    critical_dead_letters: Annotated[
        int | None,
        threshold("Critical: more dead letters than this", "status_critical_dead_letters"),
    ] = None,
    warn_replica_lag_s: Annotated[
        float | None,
        threshold("Warning: the replica's apply lag is longer", "status_warn_replica_lag_s"),
    ] = None,
    warn_memory_fraction: Annotated[
        float | None,
        threshold(
            "Warning: the buffer's Redis uses more of its maxmemory", "status_warn_memory_fraction"
        ),
    ] = None,
) -> None:
    """The site at a glance: buffer, drain estimate, replica lag, processor, recent work.

    Exit code, for monitoring: 0 ok; 1 warning (main unreachable for a while, an old pending
    write, replica lag, Redis filling up, the processor absent or crashed, a bad token); 2
    critical (the gateway unreachable or failing, Redis or the replica down, writes refused,
    the buffer near capacity, dead letters, main unreachable too long, a pending write too
    old). The last line (the JSON's level and findings) says why. The thresholds are the
    status_* settings (CCAT_STATUS_* variables, .env, the settings file); an option overrides
    one for this run.
    """
    if watch and as_json:
        raise typer.BadParameter(
            "--json prints one snapshot; leave out --watch", param_hint="--json"
        )
    limits = Thresholds.from_settings(
        configured_status_settings(),
        warn_pending_age_s=warn_pending_age_s,
        critical_pending_age_s=critical_pending_age_s,
        critical_main_unreachable_s=critical_main_unreachable_s,
        critical_dead_letters=critical_dead_letters,
        warn_replica_lag_s=warn_replica_lag_s,
        warn_memory_fraction=warn_memory_fraction,
    )
    with gateway(url, token) as client:

        def fetch() -> tuple[SiteStatus, list[TransactionState]]:
            site_status = client.site_status()
            last = (
                client.list_transactions(limit=recent).items
                if site_status.buffer is not None
                else []
            )
            return site_status, last

        def snapshot() -> Group:
            site_status, last = fetch()
            return Group(status_table(site_status, last), verdict(assess(site_status, limits)))

        if watch:
            with Live(snapshot(), console=out, refresh_per_second=4) as live:
                try:
                    while True:
                        time.sleep(interval_s)
                        live.update(snapshot())
                except KeyboardInterrupt:
                    pass
            return
        try:
            site_status, last = fetch()
        except (ConnectionFailed, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status_code < 500:
                raise  # the check is set up wrong (token, URL): `gateway` says so, exit 1
            _gateway_critical(url, exc, as_json)
        assessment = assess(site_status, limits)
        if as_json:
            document = {
                **assessment.as_json(),
                "status": site_status.model_dump(mode="json"),
                "recent": [tx.model_dump(mode="json") for tx in last],
            }
            # Plain JSON: a monitoring script must not meet colour codes or wrapped lines.
            typer.echo(json.dumps(document, indent=2))
        else:
            out.print(status_table(site_status, last))
            out.print(verdict(assessment))
    raise typer.Exit(code=int(assessment.level))


def configured_status_settings() -> StatusSettings:
    """The status_* settings from the layered configuration, validating only them: a
    monitoring host needs no secret or database URL to run the check. A wrong value ends the
    command in one line (exit 1: the check is set up wrong)."""
    try:
        values = layered_values()
        return StatusSettings.model_validate(
            {name: value for name, value in values.items() if name in StatusSettings.model_fields}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        err.print(f"[red]error[/red] settings: {escape(problems)}")
    except SettingsError as exc:
        err.print(f"[red]error[/red] settings: {escape(first_line(exc))}")
    raise typer.Exit(code=1)


def verdict(assessment: Assessment) -> str:
    colour = ("green", "yellow", "red")[assessment.level]
    return f"[{colour}]{escape(assessment.summary())}[/{colour}]"


def _gateway_critical(url: str, exc: ClientError, as_json: bool) -> NoReturn:
    if isinstance(exc, ApiError):
        detail = (exc.detail.splitlines() or ["error"])[0]
        message = f"{url} answered {exc.status_code}: {detail}"
    else:
        message = f"cannot reach {url}: {first_line(exc, 'no answer')}"
    assessment = gateway_failed(message)
    if as_json:
        typer.echo(json.dumps(assessment.as_json(), indent=2))
    err.print(f"[red]{escape(assessment.summary())}[/red]")
    raise typer.Exit(code=int(assessment.level))
