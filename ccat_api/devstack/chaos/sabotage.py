"""Deliberate damage on main after a clean check, so every run shows the checker failing on
what it exists to catch: an acknowledged file deleted (lost), an acknowledged unit copied
under a new id (duplicated), a finish's transaction moved before its unit's start (order)."""

from __future__ import annotations

import asyncpg

from ccat_api.devstack.chaos.history import History, Write


def _first(history: History, kind: str) -> Write:
    return next(w for w in history.writes if w.kind == kind and w.outcome == "acknowledged")


async def damage_main(dsn: str, history: History) -> list[str]:
    """What was done, one line each."""
    lost, copied, moved = (
        _first(history, "file"),
        _first(history, "start"),
        _first(history, "finish"),
    )
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM raw_data_files WHERE id = $1::uuid", lost.record_id)
            await conn.execute(
                "CREATE TEMP TABLE chaos_copy ON COMMIT DROP AS"
                " SELECT * FROM executed_obs_units WHERE id = $1::uuid",
                copied.record_id,
            )
            await conn.execute("UPDATE chaos_copy SET id = gen_random_uuid()")
            await conn.execute("INSERT INTO executed_obs_units SELECT * FROM chaos_copy")
            await conn.execute(
                "UPDATE applied_transactions SET applied_at = applied_at - interval '1 day'"
                " WHERE tx_id = $1::uuid",
                moved.tx_id,
            )
    finally:
        await conn.close()
    return [
        f"deleted file {lost.key} ({lost.record_id})",
        f"copied unit {copied.key} ({copied.record_id}) under a new id",
        f"moved finish {moved.key}'s transaction {moved.tx_id} a day back",
    ]
