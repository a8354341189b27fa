"""What the commands that talk to a gateway share: the consoles, ``--url`` and ``--token``,
an SDK client whose failures end the command in one line, and how ages and sizes read.

``--url`` and ``--token`` default to ``CCAT_API_URL`` and ``CCAT_API_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ccat_api.client import ApiError, Client, ClientError, ConnectionFailed

out = Console(highlight=False)
# Errors stay on one line whatever the terminal width, for people and for scripts alike.
err = Console(stderr=True, highlight=False, soft_wrap=True)

UrlOption = Annotated[
    str, typer.Option(envvar="CCAT_API_URL", help="The site's gateway", show_default=True)
]
TokenOption = Annotated[
    str, typer.Option(envvar="CCAT_API_TOKEN", help="API or session token", show_default=False)
]
DEFAULT_URL = "http://127.0.0.1:8000"


@contextmanager
def gateway(url: str, token: str, **options: Any) -> Iterator[Client]:
    """An SDK client (``options`` as ``Client`` takes them); its errors become one readable
    line and exit code 1."""
    if not token:
        raise typer.BadParameter("pass --token or set CCAT_API_TOKEN", param_hint="--token")
    try:
        with Client(url, token, on_retry=lambda event: None, **options) as client:
            yield client
    except ApiError as exc:
        err.print(f"[red]{exc.status_code}[/red] {escape(exc.detail)}")
        raise typer.Exit(code=1) from None
    except ConnectionFailed as exc:
        err.print(f"[red]cannot reach {escape(url)}[/red]: {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    except ClientError as exc:
        err.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(code=1) from None


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value = int(value / 1024)
    return f"{value} TiB"


def when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S")
