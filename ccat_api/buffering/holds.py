"""Why the replay waits on a schema disagreement, and what this processor's own code cannot
send (checked before main is asked); main's side of the same check is ``ccat_apply_batch``'s
contract (``executor.py`` turns its refusals into ``SchemaHold``)."""

from __future__ import annotations

from ccat_api.buffering.catalog import BUFFERED
from ccat_api.buffering.envelope import SCHEMA_VERSION, BufferedTransaction


class SchemaHold(Exception):
    """This site's envelopes and main's schema disagree: the batch waits, nothing written and
    nothing dead-lettered, until a migration of main or an upgrade of the site resolves it.
    ``code`` names the kind (``version_not_applied``, ``schema_drift``, ``processor_behind``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def hold_reason(tx: BufferedTransaction) -> SchemaHold | None:
    """What this processor's own code cannot send (checked before main is asked): envelopes
    built by newer code, or naming a table or column this code does not know. Older envelopes
    go to main as they are; main's contract decides whether it still applies them."""
    env = tx.envelope
    if env.schema_version > SCHEMA_VERSION:
        return SchemaHold(
            "processor_behind",
            f"transaction {env.tx_id} has envelope version {env.schema_version}; this"
            f" processor's code builds version {SCHEMA_VERSION}: upgrade the processor",
        )
    if env.schema_version < SCHEMA_VERSION:
        return None
    for step in env.steps:
        unknown = (
            {"table"}
            if step.model not in BUFFERED
            else set(step.values) - BUFFERED[step.model].codec.columns
        )
        if unknown:
            what = (
                f"table {step.model!r}"
                if step.model not in BUFFERED
                else f"{step.model} columns {sorted(unknown)}"
            )
            return SchemaHold(
                "processor_behind",
                f"transaction {env.tx_id} names {what}, which this processor's code does not"
                " know: upgrade the processor",
            )
    return None
