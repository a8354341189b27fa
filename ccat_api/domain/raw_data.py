"""Raw data files and packages: registered by the observatory as data is written, critical.

A package and the new files inside it are one transaction (the files reference the package
by its pre-generated id); packing existing files updates them in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ccat_api.buffering.builder import PreparedWrite, TransactionBuilder
from ccat_api.buffering.query import Eq
from ccat_api.db.models import RawDataPackageStatus
from ccat_api.domain.context import WriteContext
from ccat_api.errors import InvalidReference, StateConflict, UniqueConflict, Unprocessable
from ccat_api.schemas.inputs import INT64_MAX
from ccat_api.schemas.raw_data import (
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileFields,
    RawDataPackageCreate,
    RawDataPackageFinalize,
)

FILES = "raw_data_files"
PACKAGES = "raw_data_packages"
EXECUTED = "executed_obs_units"
MAX_FILES_PER_PACKAGE = 100_000


async def create_file(ctx: WriteContext, body: RawDataFileCreate) -> PreparedWrite:
    return await _create_files(ctx, [body], field_prefix="")


async def create_files(ctx: WriteContext, body: RawDataFileBulkCreate) -> PreparedWrite:
    return await _create_files(ctx, body.files, field_prefix="files")


async def _create_files(
    ctx: WriteContext, files: Sequence[RawDataFileCreate], *, field_prefix: str
) -> PreparedWrite:
    def field(i: int, name: str) -> str:
        return f"{field_prefix}[{i}].{name}" if field_prefix else name

    executed = await ctx.reader.get_many(EXECUTED, [f.executed_obs_unit_id for f in files])
    package_ids = [f.raw_data_package_id for f in files if f.raw_data_package_id is not None]
    packages = await ctx.reader.get_many(PACKAGES, package_ids)
    for i, f in enumerate(files):
        await ctx.require_module(f.instrument_module_id, field(i, "instrument_module_id"))
        if str(f.executed_obs_unit_id) not in executed:
            raise InvalidReference.missing(
                field(i, "executed_obs_unit_id"), "executed obs unit", f.executed_obs_unit_id
            )
        if f.raw_data_package_id is not None:
            _check_package_accepts(
                packages.get(str(f.raw_data_package_id)),
                f,
                field(i, "raw_data_package_id"),
            )
    await _check_paths_free(ctx, [f.relative_path for f in files], field_prefix)
    builder = ctx.builder()
    ids = [_insert_file(builder, f, f.executed_obs_unit_id, f.raw_data_package_id) for f in files]
    return PreparedWrite(builder.build(), ids[0], ids)


async def create_package(ctx: WriteContext, body: RawDataPackageCreate) -> PreparedWrite:
    await ctx.referenced(
        EXECUTED, body.executed_obs_unit_id, "executed_obs_unit_id", "executed obs unit"
    )
    await ctx.require_module(body.instrument_module_id, "instrument_module_id")
    # A package groups the files of one executed obs unit taken by one instrument module.
    for i, f in enumerate(body.files):
        _check_same_module(body, f.instrument_module_id, f"files[{i}].instrument_module_id")
    if await ctx.reader.replica_values_taken(PACKAGES, "name", [body.name]):
        raise UniqueConflict(f"name: a raw data package named {body.name!r} exists", field="name")
    existing = await ctx.reader.get_many(FILES, body.raw_data_file_ids)
    for i, file_id in enumerate(body.raw_data_file_ids):
        name = f"raw_data_file_ids[{i}]"
        current = _of_unit(
            existing.get(str(file_id)), body.executed_obs_unit_id, name, "raw data file", file_id
        )
        _check_same_module(body, current["instrument_module_id"], name)
        if current["raw_data_package_id"] is not None:
            raise StateConflict(
                f"{name}: raw data file {file_id} is already in package"
                f" {current['raw_data_package_id']}",
                field=name,
            )
    await _check_paths_free(ctx, [f.relative_path for f in body.files], "files")

    builder = ctx.builder()
    now = builder.now
    sizes = [int(existing[str(i)]["size_bytes"]) for i in body.raw_data_file_ids]
    sizes += [f.size_bytes for f in body.files]
    _check_total_size(sizes, "files")
    package_id = builder.insert(
        PACKAGES,
        {
            "name": body.name,
            "executed_obs_unit_id": body.executed_obs_unit_id,
            "instrument_module_id": body.instrument_module_id,
            "status": RawDataPackageStatus.BUILDING.value,
            "file_count": len(sizes),
            "total_size_bytes": sum(sizes),
            "checksum": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    for file_id in body.raw_data_file_ids:
        builder.update(FILES, file_id, {"raw_data_package_id": package_id}, existing[str(file_id)])
    new_ids = [_insert_file(builder, f, body.executed_obs_unit_id, package_id) for f in body.files]
    return PreparedWrite(builder.build(), package_id, [package_id, *new_ids])


async def finalize_package(
    ctx: WriteContext, package_id: UUID, body: RawDataPackageFinalize
) -> PreparedWrite:
    current = await ctx.existing(PACKAGES, package_id, "raw data package")
    if current["status"] != RawDataPackageStatus.BUILDING.value:
        raise StateConflict(
            f"status: raw data package {package_id} is {current['status']}, not building",
            field="status",
        )
    files = await ctx.reader.page(
        FILES, [Eq("raw_data_package_id", package_id)], limit=MAX_FILES_PER_PACKAGE
    )
    sizes = [int(f["size_bytes"]) for f in files.items]
    _check_total_size(sizes, "raw_data_package_id")
    builder = ctx.builder()
    builder.update(
        PACKAGES,
        package_id,
        {
            "status": RawDataPackageStatus.COMPLETE.value,
            "file_count": files.total,
            "total_size_bytes": sum(sizes),
            "checksum": body.checksum,
            "updated_at": builder.now,
        },
        current,
    )
    return PreparedWrite(builder.build(), package_id, [])


def _insert_file(
    builder: TransactionBuilder,
    f: RawDataFileFields,
    executed_obs_unit_id: UUID,
    package_id: UUID | None,
) -> UUID:
    return builder.insert(
        FILES,
        {
            "name": f.name,
            "relative_path": f.relative_path,
            "size_bytes": f.size_bytes,
            "checksum": f.checksum,
            "file_type": f.file_type,
            "instrument_module_id": f.instrument_module_id,
            "executed_obs_unit_id": executed_obs_unit_id,
            "raw_data_package_id": package_id,
            "created_at": builder.now,
        },
    )


def _check_total_size(sizes: Sequence[int], field: str) -> None:
    if sum(sizes) > INT64_MAX:
        raise Unprocessable(
            f"{field}: the package's files add up to more than {INT64_MAX} bytes", field=field
        )


def _of_unit(
    record: dict[str, Any] | None, unit_id: UUID, field: str, what: str, ref: object
) -> dict[str, Any]:
    """The record ``field`` names, which must exist and belong to the write's executed obs
    unit: files and packages group the data of one unit, never mixing two."""
    if record is None:
        raise InvalidReference.missing(field, what, ref)
    if record["executed_obs_unit_id"] != unit_id:
        raise Unprocessable(
            f"{field}: {what} {ref} belongs to another executed obs unit", field=field
        )
    return record


def _check_same_module(body: RawDataPackageCreate, module_id: int, field: str) -> None:
    if module_id != body.instrument_module_id:
        raise Unprocessable(
            f"{field}: a file of instrument module {module_id} cannot go into a package of"
            f" instrument module {body.instrument_module_id}",
            field=field,
        )


def _check_package_accepts(
    package: dict[str, Any] | None, file: RawDataFileCreate, field: str
) -> None:
    package_id = file.raw_data_package_id
    package = _of_unit(package, file.executed_obs_unit_id, field, "raw data package", package_id)
    if package["instrument_module_id"] != file.instrument_module_id:
        raise Unprocessable(
            f"{field}: raw data package {package_id} holds files of instrument module"
            f" {package['instrument_module_id']}, not {file.instrument_module_id}",
            field=field,
        )
    if package["status"] != RawDataPackageStatus.BUILDING.value:
        raise StateConflict(
            f"{field}: raw data package {package_id} is {package['status']}, not building",
            field=field,
        )


async def _check_paths_free(ctx: WriteContext, paths: Sequence[str], field_prefix: str) -> None:
    taken = await ctx.reader.replica_values_taken(FILES, "relative_path", paths)
    for i, path in enumerate(paths):
        if path in taken:
            name = f"{field_prefix}[{i}].relative_path" if field_prefix else "relative_path"
            raise UniqueConflict(f"{name}: a raw data file at {path!r} exists", field=name)
