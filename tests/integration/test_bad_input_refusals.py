"""Critical writes refused for what is (or is not) recorded (invariant 9), at a secondary site
and at main: the refusal names the field and leaves no trace."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.schemas.inputs import INT32_MAX
from tests.integration.bad_input import answer_of, main_row_counts
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, serve

# --- critical writes refused for what is (or is not) recorded ------------------------------
# Start, finish and single files are refused in test_accept.py; these are the rest.

FILE = {"size_bytes": 1000, "checksum": "sha256:0011223344556677", "file_type": "fits",
        "instrument_module_id": 1}  # fmt: skip
UNKNOWN_LOCATION = 999_999
UNKNOWN_ROUTE = 999_999


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Recorded:
    """What the refusals refer to, recorded through the site under test."""

    site: str
    unit: str
    other_unit: str
    other_units_file: str
    packed_file: str
    building: dict[str, Any]
    complete: str
    pending: str
    transferring: str
    failed: str
    deleted_copy: str
    on_replica: str


async def package_on_main(stack: Stack, name: str) -> str:
    """A package recorded on main and replicated, as if written long ago."""
    unit, package = uuid.uuid4(), uuid.uuid4()
    stack.main_db.psql(
        "INSERT INTO executed_obs_units (id, obs_unit_id, site_id, status, start_time,"
        " created_by) VALUES"
        f" ('{unit}', 1, 1, 'success', now(), 'test');"
        "INSERT INTO raw_data_packages (id, name, executed_obs_unit_id, instrument_module_id,"
        f" status) VALUES ('{package}', '{name}', '{unit}', 1, 'complete')",
        user="ccat",
    )
    stack.wait_replica_caught_up()
    return str(package)


async def record(http: httpx.AsyncClient, stack: Stack, site: str) -> Recorded:
    async def start() -> str:
        answer = await ok(
            await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201
        )
        return str(answer["id"])

    async def package(name: str, unit: str) -> tuple[str, list[str]]:
        files = [{**FILE, "name": f"f{i}", "relative_path": f"{name}/f{i}.fits"} for i in range(3)]
        body = {"name": name, "executed_obs_unit_id": unit, "instrument_module_id": 1,
                "files": files}  # fmt: skip
        answer = await ok(await http.post("/raw_data_package", json=body), 201)
        return answer["id"], answer["ids"][1:]

    async def transfer(package_id: str, route_id: int, *moves: dict[str, Any]) -> str:
        body = {"raw_data_package_id": package_id, "route_id": route_id}
        moved = str((await ok(await http.post("/api/transfer/transfers", json=body), 201))["id"])
        for move in moves:
            await ok(await http.put(f"/api/transfer/transfers/{moved}", json=move))
        return moved

    unit, other_unit = await start(), await start()
    other_files = await ok(
        await http.post(
            "/raw_data_files",
            json={**FILE, "name": "o", "relative_path": f"{site}/other/o.fits",
                  "executed_obs_unit_id": other_unit},
        ),
        201,
    )  # fmt: skip
    building, packed = await package(f"building-{site}", unit)
    complete, _ = await package(f"complete-{site}", unit)
    await ok(await http.put(f"/raw_data_package/{complete}/finalize", json={}))
    copy = await ok(
        await http.post(
            "/api/transfer/copies",
            json={"raw_data_package_id": complete, "data_location_id": 2, "path": f"/b/{site}"},
        ),
        201,
    )
    await ok(await http.put(f"/api/transfer/copies/{copy['id']}", json={"status": "deleted"}))
    return Recorded(
        site=site,
        unit=unit,
        other_unit=other_unit,
        other_units_file=other_files["id"],
        packed_file=packed[0],
        building={"id": building, "name": f"building-{site}"},
        complete=complete,
        pending=await transfer(complete, 1),
        transferring=await transfer(complete, 3, {"status": "transferring"}),
        failed=await transfer(complete, 2, {"status": "failed", "error": "disk full"}),
        deleted_copy=copy["id"],
        on_replica=await package_on_main(stack, f"on-main-{site}"),
    )


def new_package(r: Recorded, **changes: Any) -> dict[str, Any]:
    return {"name": f"new-{r.site}", "executed_obs_unit_id": r.unit, "instrument_module_id": 1,
            **changes}  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    case: str
    method: str
    path: Callable[[Recorded], str]
    body: Callable[[Recorded], Any]
    status: int
    field: str | None


REFUSALS = [
    Refusal("package with an unknown file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[str(uuid.uuid4())]),
            422, "raw_data_file_ids[0]"),
    Refusal("package with another unit's file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[r.other_units_file]),
            422, "raw_data_file_ids[0]"),
    Refusal("package with an already packed file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[r.packed_file]),
            409, "raw_data_file_ids[0]"),
    Refusal("package named like a buffered one", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, name=r.building["name"]), 409, "name"),
    Refusal("package named like one on the replica", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, name=f"on-main-{r.site}"), 409, "name"),
    Refusal("package of an unknown unit", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, executed_obs_unit_id=str(uuid.uuid4())),
            422, "executed_obs_unit_id"),
    Refusal("package with a new file of another module", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, files=[{**FILE, "name": "m2", "instrument_module_id": 2,
                                             "relative_path": f"{r.site}/m2.fits"}]),
            422, "files[0].instrument_module_id"),
    Refusal("file into a package of another module", "POST", lambda r: "/raw_data_files",
            lambda r: {**FILE, "name": "m2", "relative_path": f"{r.site}/m2.fits",
                       "instrument_module_id": 2, "executed_obs_unit_id": r.unit,
                       "raw_data_package_id": r.building["id"]},
            422, "raw_data_package_id"),
    Refusal("package of an unknown module", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, instrument_module_id=INT32_MAX), 422, "instrument_module_id"),
    Refusal("finalize an unknown package", "PUT",
            lambda r: f"/raw_data_package/{uuid.uuid4()}/finalize", lambda r: {}, 404, None),
    Refusal("finalize a finalized package", "PUT",
            lambda r: f"/raw_data_package/{r.complete}/finalize", lambda r: {}, 409, "status"),
    Refusal("transfer of an unknown package", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": str(uuid.uuid4()), "route_id": 1},
            422, "raw_data_package_id"),
    Refusal("transfer of a building package", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": r.building["id"], "route_id": 1},
            409, "raw_data_package_id"),
    Refusal("transfer along an unknown route", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": r.complete, "route_id": UNKNOWN_ROUTE},
            422, "route_id"),
    Refusal("progress past the package's size", "PUT",
            lambda r: f"/api/transfer/transfers/{r.transferring}",
            lambda r: {"status": "transferring", "bytes_transferred": 10**9},
            422, "bytes_transferred"),
    Refusal("a failed transfer moving on", "PUT", lambda r: f"/api/transfer/transfers/{r.failed}",
            lambda r: {"status": "transferring"}, 409, "status"),
    Refusal("a failure without its reason", "PUT",
            lambda r: f"/api/transfer/transfers/{r.pending}", lambda r: {"status": "failed"},
            422, "error"),
    Refusal("progress of an unknown transfer", "PUT",
            lambda r: f"/api/transfer/transfers/{uuid.uuid4()}",
            lambda r: {"status": "transferring"}, 404, None),
    Refusal("reset of a pending transfer", "POST",
            lambda r: f"/api/transfer/transfers/{r.pending}/reset", lambda r: None, 409, "status"),
    Refusal("log of an unknown transfer", "POST",
            lambda r: f"/api/transfer/transfers/{uuid.uuid4()}/logs",
            lambda r: {"message": "bbcp started"}, 404, None),
    Refusal("copy of an unknown package", "POST", lambda r: "/api/transfer/copies",
            lambda r: {"raw_data_package_id": str(uuid.uuid4()), "data_location_id": 2,
                       "path": "/b/x"},
            422, "raw_data_package_id"),
    Refusal("copy at an unknown location", "POST", lambda r: "/api/transfer/copies",
            lambda r: {"raw_data_package_id": r.complete, "data_location_id": UNKNOWN_LOCATION,
                       "path": "/b/x"},
            422, "data_location_id"),
    Refusal("update of an unknown copy", "PUT", lambda r: f"/api/transfer/copies/{uuid.uuid4()}",
            lambda r: {"status": "verified"}, 404, None),
    Refusal("a deleted copy present again", "PUT",
            lambda r: f"/api/transfer/copies/{r.deleted_copy}", lambda r: {"status": "present"},
            409, "status"),
]  # fmt: skip


@pytest.mark.parametrize("site_type", ["secondary", "main"])
async def test_critical_writes_refused_for_what_is_recorded_name_the_field_and_leave_no_trace(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    main_settings: Settings,
    site_type: str,
) -> None:
    """At a secondary site nothing is buffered (stream, overlay, idempotency answers); at main
    nothing is written."""
    settings = secondary_settings if site_type == "secondary" else main_settings
    # Names and paths of this test's own records, wherever they are written.
    site = secondary_settings.site_name

    async def trace() -> dict[str, int]:
        if settings.is_secondary:
            return await buffer_state(settings.redis_url, settings.site_name)
        return await main_row_counts(stack)

    failures = []
    async with serve(settings) as url, client(url, tokens.admin) as http:
        recorded = await record(http, stack, site)
        before = await trace()
        for i, refusal in enumerate(REFUSALS):
            r = await http.request(
                refusal.method,
                refusal.path(recorded),
                json=refusal.body(recorded),
                # A refusal must not be remembered as the answer to this key either.
                headers={"Idempotency-Key": f"refused-{i}"},
            )
            answer = answer_of(r)
            got = (r.status_code, answer.get("field"))
            if got != (refusal.status, refusal.field) or (
                refusal.field and refusal.field not in answer.get("detail", "")
            ):
                failures.append(f"{refusal.case}: {got} {r.text[:200]}")
            after = await trace()
            if after != before:
                failures.append(f"{refusal.case}: left a trace: {before} -> {after}")
                before = after
    assert not failures, "\n".join(failures)
