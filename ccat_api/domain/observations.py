"""Executed obs units: started and finished by the observatory, critical at every site."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ccat_api.buffering.builder import PreparedWrite
from ccat_api.db.models import ExecutedObsUnitStatus
from ccat_api.domain.context import WriteContext
from ccat_api.errors import InvalidReference, StateConflict, Unprocessable
from ccat_api.schemas.observations import ExecutedObsUnitFinish, ExecutedObsUnitStart

MODEL = "executed_obs_units"


async def start(ctx: WriteContext, body: ExecutedObsUnitStart) -> PreparedWrite:
    obs_unit = await ctx.references.obs_unit(body.obs_unit_id)
    if obs_unit is None:
        raise InvalidReference.missing("obs_unit_id", "obs unit", body.obs_unit_id)
    if body.instrument_module_id is not None:
        instrument_id = await ctx.require_module(body.instrument_module_id, "instrument_module_id")
        if instrument_id != obs_unit.instrument_id:
            raise Unprocessable(
                f"instrument_module_id: module {body.instrument_module_id} belongs to instrument"
                f" {instrument_id}, but obs unit {obs_unit.id} uses instrument"
                f" {obs_unit.instrument_id}",
                field="instrument_module_id",
            )
    builder = ctx.builder()
    now = builder.now
    pk = builder.insert(
        MODEL,
        {
            "obs_unit_id": obs_unit.id,
            "site_id": obs_unit.site_id,
            "instrument_module_id": body.instrument_module_id,
            "status": ExecutedObsUnitStatus.RUNNING.value,
            "start_time": body.start_time or now,
            "end_time": None,
            "mean_pwv_mm": body.mean_pwv_mm,
            "mean_elevation_deg": body.mean_elevation_deg,
            "conditions": body.conditions,
            "created_by": ctx.principal.name,
            "created_at": now,
            "updated_at": now,
        },
    )
    return PreparedWrite(builder.build(), pk, [pk])


async def finish(ctx: WriteContext, pk: UUID, body: ExecutedObsUnitFinish) -> PreparedWrite:
    current = await ctx.existing(MODEL, pk, "executed obs unit")
    if current["status"] != ExecutedObsUnitStatus.RUNNING.value:
        raise StateConflict(
            f"status: executed obs unit {pk} is already {current['status']}", field="status"
        )
    builder = ctx.builder()
    end_time = body.end_time or builder.now
    if end_time < current["start_time"]:
        raise Unprocessable(
            f"end_time: {end_time.isoformat()} is before start_time"
            f" {current['start_time'].isoformat()}",
            field="end_time",
        )
    changes: dict[str, Any] = {
        "status": body.status,
        "end_time": end_time,
        "updated_at": builder.now,
    }
    if body.mean_pwv_mm is not None:
        changes["mean_pwv_mm"] = body.mean_pwv_mm
    if body.mean_elevation_deg is not None:
        changes["mean_elevation_deg"] = body.mean_elevation_deg
    if body.conditions:
        changes["conditions"] = {**(current.get("conditions") or {}), **body.conditions}
    builder.update(MODEL, pk, changes, current)
    return PreparedWrite(builder.build(), pk, [])
