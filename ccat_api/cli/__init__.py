"""The ``ccat-api`` command: serve, process, migrate, seed, tokens, users, stack, wan,
status, dead-letters, spool.

ccat-api stack up                               the local two-site stack with the demo
ccat-api serve                                  a gateway for the configured site
ccat-api process [--burst]                      the processor and LSN tracker alone
ccat-api tokens create --user LOGIN [--role R]  a token (creates the service account)
ccat-api status [--watch]                       a site at a glance (via its gateway)
ccat-api dead-letters list|show|retry|discard   act on dead letters (via its gateway)
ccat-api spool status|flush --path P           an instrument's SDK spool (on its machine)
ccat-api config example                         .env.example, from the Settings model
ccat-api site add|remove NAME                   a secondary site's slot and account on main
ccat-api prune                                  one retention pass on main (cron)

A database or Redis out of reach ends any command with one line and exit code 1.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated

import typer
from rich.markup import escape

from ccat_api.cli import accounts, operator, prune, service, sites, spool, stack, status_check
from ccat_api.cli.terminal import err
from ccat_api.cli.unreachable import describe_unreachable

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"ccat-api {version('ccat-api')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    pass


for command in (service.serve, service.process, service.migrate, service.seed):
    app.command()(command)
app.command("status")(status_check.status)
app.command("prune")(prune.prune)
app.add_typer(accounts.tokens_app, name="tokens")
app.add_typer(accounts.users_app, name="users")
app.add_typer(stack.stack_app, name="stack")
app.add_typer(stack.wan_app, name="wan")
app.add_typer(service.config_app, name="config")
app.add_typer(operator.dead_letters_app, name="dead-letters")
app.add_typer(spool.spool_app, name="spool")
app.add_typer(sites.site_app, name="site")


def main() -> None:
    try:
        app()
    except Exception as exc:
        line = describe_unreachable(exc)
        if line is None:
            raise
        err.print(f"[red]error[/red] {escape(line)}")
        sys.exit(1)
