"""The operator's commands: ``ccat-api status`` and ``ccat-api dead-letters ...``.

They talk to a gateway over HTTP with the SDK, like the console does, so they work from any
machine that can reach the site's gateway and need only a token (``read:buffer`` to look,
``operate:buffer`` to retry or discard).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
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
from ccat_api.client import (
    ApiError,
    Client,
    ClientError,
    ConnectionFailed,
    SiteStatus,
    TransactionState,
)
from ccat_api.config import layered_values
from ccat_api.config_status import StatusSettings
from ccat_api.errors import first_line

dead_letters_app = typer.Typer(
    no_args_is_help=True, help="List, inspect, retry or discard dead letters (via a gateway)."
)
PAGE = 500
THRESHOLDS_PANEL = "Thresholds (exit code 1 warning, 2 critical; default: the setting)"


# --- status ---------------------------------------------------------------------------------


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
        typer.Option(
            help="Warning: the oldest pending write is older",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_warn_pending_age_s",
        ),
    ] = None,
    critical_pending_age_s: Annotated[
        float | None,
        typer.Option(
            help="Critical: the oldest pending write is older",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_critical_pending_age_s",
        ),
    ] = None,
    critical_main_unreachable_s: Annotated[
        float | None,
        typer.Option(
            help="Critical: main unreachable from a secondary site for longer (shorter: warning)",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_critical_main_unreachable_s",
        ),
    ] = None,
    critical_dead_letters: Annotated[
        int | None,
        typer.Option(
            help="Critical: more dead letters than this",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_critical_dead_letters",
        ),
    ] = None,
    warn_replica_lag_s: Annotated[
        float | None,
        typer.Option(
            help="Warning: the replica's apply lag is longer",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_warn_replica_lag_s",
        ),
    ] = None,
    warn_memory_fraction: Annotated[
        float | None,
        typer.Option(
            help="Warning: the buffer's Redis uses more of its maxmemory",
            rich_help_panel=THRESHOLDS_PANEL,
            show_default="status_warn_memory_fraction",
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


# --- dead letters ---------------------------------------------------------------------------


def _checked_tx_ids(tx_ids: list[str]) -> list[str]:
    """Refuse what cannot be a transaction id before asking the gateway: one line, exit 2
    (a usage error, as for any bad argument)."""
    for tx_id in tx_ids:
        try:
            uuid.UUID(tx_id)
        except ValueError:
            err.print(
                f"[red]error[/red] TX_ID: {escape(repr(tx_id))} is not a transaction id (a UUID)"
            )
            raise typer.Exit(code=2) from None
    return tx_ids


def _all_dead_letters(client: Client) -> list[TransactionState]:
    found: list[TransactionState] = []
    while True:
        page = client.list_dead_letters(limit=PAGE, offset=len(found))
        found += page.items
        if not page.items or len(found) >= page.total:
            return found


@dead_letters_app.command("list")
def dead_letters_list(url: UrlOption = DEFAULT_URL, token: TokenOption = "") -> None:
    """Dead letters, newest first, with their errors."""
    with gateway(url, token) as client:
        letters = _all_dead_letters(client)
    if not letters:
        out.print("no dead letters")
        return
    table = Table()
    for column in ("tx_id", "seq", "failed", "code", "error"):
        table.add_column(column, overflow="fold")
    for tx in letters:
        table.add_row(
            tx.tx_id, str(tx.seq), when(tx.failed_at), tx.error_code or "", (tx.error or "")[:200]
        )
    out.print(table)
    out.print(f"{len(letters)} dead letter(s)")


@dead_letters_app.command("show")
def dead_letters_show(
    tx_id: Annotated[str, typer.Argument(help="The transaction")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Everything the site knows about one transaction."""
    _checked_tx_ids([tx_id])
    with gateway(url, token) as client:
        tx = client.get_transaction(tx_id)
    out.print_json(tx.model_dump_json())


def _targets(client: Client, tx_ids: list[str] | None, every: bool) -> list[str]:
    if every == bool(tx_ids):
        raise typer.BadParameter("name transactions or pass --all (not both)")
    if tx_ids:
        return _checked_tx_ids(tx_ids)
    # Oldest first: a retried transaction goes to the end of the stream in this order.
    return [tx.tx_id for tx in sorted(_all_dead_letters(client), key=lambda t: t.seq)]


@contextmanager
def _progress(what: str, total: int) -> Iterator[Progress]:
    with Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as progress:
        progress.add_task(what, total=total)
        yield progress


@dead_letters_app.command("retry")
def dead_letters_retry(
    tx_ids: Annotated[list[str] | None, typer.Argument(help="Transactions to retry")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Re-buffer dead letters (each with the dead letters that depended on it)."""
    retried: list[str] = []
    failures: list[str] = []
    with gateway(url, token) as client:
        targets = _targets(client, tx_ids, every)
        with _progress("retrying", len(targets)) as progress:
            for tx_id in targets:
                if tx_id in retried:  # already re-buffered as a dependent of an earlier one
                    progress.advance(progress.task_ids[0])
                    continue
                try:
                    retried += client.retry_transaction(tx_id).retried
                except ApiError as exc:
                    failures.append(f"{tx_id}: {exc.status_code} {exc.detail}")
                progress.advance(progress.task_ids[0])
    for tx_id in retried:
        out.print(f"retried {tx_id}")
    for line in failures:
        err.print(f"[red]not retried[/red] {line}")
    out.print(f"{len(retried)} transaction(s) back in the buffer")
    if failures:
        raise typer.Exit(code=1)


@dead_letters_app.command("discard")
def dead_letters_discard(
    tx_ids: Annotated[list[str] | None, typer.Argument(help="Transactions to discard")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
) -> None:
    """Give up on dead letters for good (their status stays readable for a while)."""
    failures: list[str] = []
    with gateway(url, token) as client:
        targets = _targets(client, tx_ids, every)
        if not yes:
            typer.confirm(f"discard {len(targets)} transaction(s) for good?", abort=True)
        with _progress("discarding", len(targets)) as progress:
            for tx_id in targets:
                try:
                    client.discard_transaction(tx_id)
                except ApiError as exc:
                    failures.append(f"{tx_id}: {exc.status_code} {exc.detail}")
                progress.advance(progress.task_ids[0])
    for line in failures:
        err.print(f"[red]not discarded[/red] {line}")
    out.print(f"{len(targets) - len(failures)} transaction(s) discarded")
    if failures:
        raise typer.Exit(code=1)
