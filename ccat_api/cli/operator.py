"""The operator's commands on dead letters: ``ccat-api dead-letters list|show|retry|discard``.

They talk to a gateway over HTTP with the SDK, like the console does, so they work from any
machine that can reach the site's gateway and need only a token (``read:buffer`` to look,
``operate:buffer`` to retry or discard).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ccat_api.cli.terminal import DEFAULT_URL, TokenOption, UrlOption, err, gateway, out, when
from ccat_api.client import ApiError, Client, TransactionState

dead_letters_app = typer.Typer(
    no_args_is_help=True, help="List, inspect, retry or discard dead letters (via a gateway)."
)
PAGE = 500


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
    apply_anyway: Annotated[
        bool,
        typer.Option(
            "--apply-anyway",
            help="Resolve conflicts for the site's change, over main's row as it is now",
        ),
    ] = False,
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
                    retried += client.retry_transaction(tx_id, apply_anyway=apply_anyway).retried
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
