"""``ccat-api prune``: one retention pass on main (db/pruning.py), for cron or a systemd timer
where the main gateway's own periodic pass is turned off (``prune_interval_s = 0``)."""

from __future__ import annotations

import asyncio
import json

import typer

from ccat_api.cli.accounts import on_main
from ccat_api.config import load_settings


def prune() -> None:
    """Prune applied_transactions and idempotency_records on main; print what went."""
    from ccat_api.db.pruning import Pruner

    settings = load_settings()
    counts = asyncio.run(on_main(settings, "prune", lambda db: Pruner(db, settings).run_once()))
    typer.echo(json.dumps(vars(counts)))
