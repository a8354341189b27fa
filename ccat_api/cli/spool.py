"""``ccat-api spool status|flush``: an instrument's SDK spool (``ccat_api.client.spool``, the
same file the SDK writes) read and sent from the command line, on the instrument machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ccat_api.cli import terminal
from ccat_api.cli.terminal import DEFAULT_URL, TokenOption, UrlOption
from ccat_api.client import RetryPolicy, SpoolError, SpoolOptions, SpoolStatus
from ccat_api.client.spool import Spool

spool_app = typer.Typer(
    no_args_is_help=True, help="An instrument's SDK spool: what it holds; send it now."
)
PathOption = Annotated[
    Path, typer.Option("--path", help="The spool file (what the instrument passes as spool=)")
]


def _read(path: Path) -> SpoolStatus:
    try:
        spool = Spool(path, create=False)
    except SpoolError as exc:
        terminal.err.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    try:
        return spool.status()
    finally:
        spool.close()


def blocking(status: SpoolStatus) -> str:
    """What keeps the spool's next write from leaving."""
    if status.head is None:
        return "nothing: the spool is empty"
    if status.sender_pid is not None:
        return f"nothing: process {status.sender_pid} is sending it now"
    return status.head.last_error or "nothing yet: not sent so far"


def status_table(status: SpoolStatus) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("spool", escape(status.path))
    table.add_row("writes", f"{status.entries} (bound {status.max_entries})")
    table.add_row(
        "bytes",
        f"{terminal.size(status.size_bytes)} (bound {terminal.size(status.max_bytes)});"
        f" on disk {terminal.size(status.file_bytes)}",
    )
    since = terminal.when(status.oldest_spooled_at)
    table.add_row("oldest", f"waiting {terminal.age(status.oldest_age_s)} (since {since} UTC)")
    head = status.head
    if head is not None:
        table.add_row(
            "next", f"#{head.seq} {head.method} {escape(head.path)}, {head.attempts} attempt(s)"
        )
    table.add_row("blocked by", escape(blocking(status)))
    for destination, count in status.destinations:
        table.add_row(
            "for", f"{escape(destination.gateway)} as {destination.token_name}: {count} write(s)"
        )
    last = status.last_rejection
    refused = f"{status.rejected}"
    if last is not None:
        refused += f" (last #{last.seq} {last.method} {escape(last.path)}: {escape(last.error)})"
    table.add_row("refused", refused)
    return table


@spool_app.command("status")
def spool_status(path: PathOption) -> None:
    """What the spool holds: writes, the oldest's age, bytes, and what holds them back."""
    terminal.out.print(status_table(_read(path)))


@spool_app.command("flush")
def spool_flush(
    path: PathOption,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = "",
    attempts: Annotated[int, typer.Option(min=1, help="Sends of each write, retries included")] = 3,
) -> None:
    """Send the spooled writes now, oldest first, with the token they were made with."""
    held = _read(path)
    # The bounds the instrument set stay as they are: this command only takes writes out.
    options = SpoolOptions(
        path, max_entries=held.max_entries, max_bytes=held.max_bytes, background=False
    )
    with terminal.gateway(
        url, token, spool=options, retry=RetryPolicy(max_attempts=attempts)
    ) as client:
        report = client.flush_spool()
    for refusal in report.rejected:
        terminal.err.print(f"[yellow]refused for good[/yellow] {escape(refusal)}")
    terminal.out.print(
        f"{report.delivered} write(s) delivered, {len(report.rejected)} refused,"
        f" {report.remaining} left"
    )
    if report.remaining:
        reason = escape(report.blocked_by or "not sent")
        left = f"{report.remaining} write(s) left in {escape(str(path))}"
        terminal.err.print(f"[red]not sent[/red] to {escape(url)}: {reason}; {left}")
        raise typer.Exit(code=1)
