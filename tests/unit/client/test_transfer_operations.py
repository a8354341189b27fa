"""Physical copies and the transfer-area lists through both clients: copies are critical
writes (a key per call, the same on each retry), lists send only the filters given and come
back typed."""

from __future__ import annotations

import typing
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic
import pytest

from ccat_api.client import (
    ApiError,
    PackageStatus,
    PhysicalCopyRead,
    RawDataFileRead,
    RawDataPackageRead,
    TransferLogRead,
    TransferRead,
    TransferStatus,
)
from ccat_api.db.models import RawDataPackageStatus
from ccat_api.db.models import TransferStatus as ServerTransferStatus
from tests.unit.client.fake_gateway import FakeGateway, Kind, accepted, refused, run

KINDS = ["sync", "async"]
PACKAGE = "019a4c2e-7f00-7000-8000-000000000003"
COPY = "019a4c2e-7f00-7000-8000-000000000004"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC).isoformat()
NEW_COPY = {"raw_data_package_id": PACKAGE, "data_location_id": 2, "path": "/data/buffer/pkg-1"}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    kind: Kind = request.param
    return kind


def page(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"items": list(items), "total": len(items), "limit": 100,
                                     "offset": 0})  # fmt: skip


def a_copy(**changes: Any) -> dict[str, Any]:
    return {"id": COPY, "raw_data_package_id": PACKAGE, "data_location_id": 2,
            "path": "/data/buffer/pkg-1", "status": "present", "checksum": None,
            "created_at": NOW, "updated_at": NOW, **changes}  # fmt: skip


def test_a_copy_is_written_with_one_key_on_every_attempt(kind: Kind) -> None:
    gateway = FakeGateway([httpx.ReadError("connection reset by peer"), accepted()])
    result = run(kind, gateway, "add_copy", NEW_COPY)
    assert [(r.method, r.url.path) for r in gateway.requests] == [
        ("POST", "/api/transfer/copies")
    ] * 2
    assert gateway.keys() == [result.idempotency_key] * 2
    assert uuid.UUID(result.idempotency_key)
    assert gateway.body() == NEW_COPY  # unset fields (checksum) are left to the server
    assert (result.http_status, result.attempts) == (201, 2)


def test_two_copy_writes_carry_different_keys(kind: Kind) -> None:
    gateway = FakeGateway([accepted(), accepted(200)])
    first = run(kind, gateway, "add_copy", NEW_COPY)
    second = run(kind, gateway, "update_copy", COPY, {"status": "verified"})
    assert first.idempotency_key != second.idempotency_key
    assert gateway.keys() == [first.idempotency_key, second.idempotency_key]


def test_a_copy_update_is_a_put_with_the_callers_key(kind: Kind) -> None:
    gateway = FakeGateway([httpx.ReadTimeout("slow"), accepted(200)])
    body = {"status": "verified", "checksum": "md5:0123456789abcdef"}
    result = run(kind, gateway, "update_copy", COPY, body, idempotency_key="copy-42-verified")
    assert [(r.method, r.url.path) for r in gateway.requests] == [
        ("PUT", f"/api/transfer/copies/{COPY}")
    ] * 2
    assert gateway.keys() == ["copy-42-verified"] * 2
    assert gateway.body() == body
    assert result.http_status == 200


def test_a_refused_copy_update_is_not_retried(kind: Kind) -> None:
    gateway = FakeGateway([refused(409, "status: a deleted copy stays deleted", "status",
                                   "state_conflict")])  # fmt: skip
    with pytest.raises(ApiError, match="deleted copy stays deleted") as raised:
        run(kind, gateway, "update_copy", COPY, {"status": "present"})
    assert (raised.value.status_code, raised.value.field) == (409, "status")
    assert len(gateway.requests) == 1


@pytest.mark.parametrize(
    ("operation", "args", "field"),
    [
        ("add_copy", ({**NEW_COPY, "path": ""},), "path"),
        ("add_copy", ({**NEW_COPY, "data_location_id": 0},), "data_location_id"),
        ("add_copy", ({**NEW_COPY, "colour": "blue"},), "colour"),
        ("update_copy", (COPY, {"status": "lost"}), "status"),
    ],
)
def test_a_malformed_copy_is_refused_before_anything_is_sent(
    kind: Kind, operation: str, args: tuple[Any, ...], field: str
) -> None:
    gateway = FakeGateway()
    with pytest.raises(pydantic.ValidationError, match=field):
        run(kind, gateway, operation, *args)
    with pytest.raises(ValueError, match="badly formed"):
        run(kind, gateway, "update_copy", "../packages", {"status": "verified"})
    assert gateway.requests == []


def test_lists_send_only_the_filters_given_and_repeat_status(kind: Kind) -> None:
    transfer = {"id": str(uuid.uuid4()), "raw_data_package_id": PACKAGE, "route_id": 2,
                "status": "failed", "bytes_total": 3000, "bytes_transferred": 0,
                "attempts": 1, "error": "disk full", "started_at": None, "finished_at": None,
                "created_at": NOW, "updated_at": NOW}  # fmt: skip
    gateway = FakeGateway([page(transfer)])
    found = run(kind, gateway, "list_transfers", status=["pending", "failed"], route_id=2)
    request = gateway.requests[0]
    assert (request.method, request.url.path) == ("GET", "/api/transfer/transfers")
    assert request.url.params.get_list("status") == ["pending", "failed"]
    assert sorted(k for k, _ in request.url.params.multi_items()) == [
        "route_id", "status", "status",
    ]  # fmt: skip
    assert gateway.keys() == [None]
    (item,) = found.items
    assert isinstance(item, TransferRead)
    assert (item.status, item.error) == ("failed", "disk full")


def test_packages_list_by_one_status_and_unit(kind: Kind) -> None:
    unit = str(uuid.uuid4())
    package = {"id": PACKAGE, "name": "pkg-1", "executed_obs_unit_id": unit,
               "instrument_module_id": 1, "status": "complete", "file_count": 3,
               "total_size_bytes": 3000, "checksum": "md5:feedfeed", "created_at": NOW,
               "updated_at": NOW}  # fmt: skip
    gateway = FakeGateway([page(package)])
    found = run(kind, gateway, "list_packages", status="complete", executed_obs_unit_id=unit,
                order="created_at", limit=5)  # fmt: skip
    request = gateway.requests[0]
    assert request.url.path == "/api/transfer/packages"
    assert list(request.url.params.multi_items()) == [
        ("status", "complete"), ("executed_obs_unit_id", unit), ("order", "created_at"),
        ("limit", "5"),
    ]  # fmt: skip
    assert isinstance(found.items[0], RawDataPackageRead)
    assert found.items[0].file_count == 3


def test_copies_list_by_package_and_location(kind: Kind) -> None:
    gateway = FakeGateway([page(a_copy(), a_copy(id=str(uuid.uuid4()), status="verified"))])
    found = run(kind, gateway, "list_copies", raw_data_package_id=uuid.UUID(PACKAGE),
                data_location_id=2)  # fmt: skip
    request = gateway.requests[0]
    assert request.url.path == "/api/transfer/copies"
    assert dict(request.url.params) == {"raw_data_package_id": PACKAGE, "data_location_id": "2"}
    assert [c.status for c in found.items] == ["present", "verified"]
    assert all(isinstance(c, PhysicalCopyRead) for c in found.items)


def test_one_copy_and_one_file_are_read_by_id(kind: Kind) -> None:
    file_id = str(uuid.uuid4())
    file = {"id": file_id, "name": "scan_0001.fits", "relative_path": "2026/scan_0001.fits",
            "size_bytes": 1024, "checksum": "sha256:0011223344556677", "file_type": "fits",
            "instrument_module_id": 1, "executed_obs_unit_id": str(uuid.uuid4()),
            "raw_data_package_id": None, "created_at": NOW}  # fmt: skip
    gateway = FakeGateway([httpx.Response(200, json=a_copy()), httpx.Response(200, json=file)])
    copy = run(kind, gateway, "get_copy", COPY)
    got = run(kind, gateway, "get_raw_data_file", file_id)
    assert [r.url.path for r in gateway.requests] == [
        f"/api/transfer/copies/{COPY}", f"/raw_data_files/{file_id}",
    ]  # fmt: skip
    assert isinstance(copy, PhysicalCopyRead)
    assert copy.path == "/data/buffer/pkg-1"
    assert isinstance(got, RawDataFileRead)
    assert str(got.id) == file_id


def test_the_sdk_status_names_are_the_servers() -> None:
    assert set(typing.get_args(PackageStatus)) == {s.value for s in RawDataPackageStatus}
    assert set(typing.get_args(TransferStatus)) == {s.value for s in ServerTransferStatus}


def test_transfer_logs_list_pages_by_transfer(kind: Kind) -> None:
    transfer = str(uuid.uuid4())
    line = {"id": str(uuid.uuid4()), "data_transfer_id": transfer, "level": "warning",
            "message": "slow link", "logged_at": NOW}  # fmt: skip
    gateway = FakeGateway([page(line)])
    found = run(kind, gateway, "list_transfer_logs", transfer, limit=10)
    request = gateway.requests[0]
    assert (request.method, request.url.path) == ("GET", f"/api/transfer/transfers/{transfer}/logs")
    assert dict(request.url.params) == {"limit": "10"}
    assert gateway.keys() == [None]
    (got,) = found.items
    assert isinstance(got, TransferLogRead)
    assert (str(got.data_transfer_id), got.level, got.message) == (transfer, "warning", "slow link")
