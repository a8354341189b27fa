"""How a client judges a unit read back at the site: each acknowledged file and package once,
the finish's status; an answer without them is a read-your-writes violation, a 5xx says
nothing either way."""

from __future__ import annotations

from typing import Any

import httpx

from ccat_api.devstack.chaos.history import Write
from ccat_api.devstack.chaos.workload import judge_pages, judge_unit

WRITES = [
    Write("u", "start", "u", "acknowledged", 201, "unit", "tx-1"),
    Write("u", "file", "u-f0", "acknowledged", 201, "f0", "tx-2"),
    Write("u", "file", "u-f1", "acknowledged", 201, "f1", "tx-3"),
    Write("u", "package", "u-p", "acknowledged", 201, "pkg", "tx-4", files=1),
    Write("u", "finish", "u-x", "acknowledged", 200, "unit", "tx-5"),
]


def details(loose: list[str], packed: list[str], status: str = "success") -> httpx.Response:
    body: dict[str, Any] = {
        "id": "unit",
        "status": status,
        "unpackaged_files": [{"id": f} for f in loose],
        "packages": [{"id": "pkg", "files": [{"id": f} for f in packed]}],
    }
    return httpx.Response(200, json=body)


def violations(answer: httpx.Response) -> list[str]:
    return [p.key for p in judge_unit(answer, WRITES, "t") if p.result == "violation"]


def test_every_acknowledged_record_once_passes() -> None:
    assert violations(details(["f1"], ["f0", "pkg-new-file"])) == []


def test_a_file_missing_from_the_merged_read_is_a_violation() -> None:
    assert violations(details([], ["f0"])) == ["u-f1"]


def test_a_file_listed_twice_is_a_violation() -> None:
    assert violations(details(["f1", "f0"], ["f0"])) == ["u-f0", "u"]


def test_a_finish_the_read_does_not_show_is_a_violation() -> None:
    assert violations(details(["f1"], ["f0"], status="running")) == ["u"]


def test_a_server_error_is_no_verdict() -> None:
    probes = judge_unit(httpx.Response(503), WRITES, "t")
    assert [p.result for p in probes] == ["unavailable"]


def page(ids: list[str], total: int) -> dict[str, Any]:
    return {"items": [{"id": i} for i in ids], "total": total}


def page_violations(pages: list[dict[str, Any]]) -> list[str]:
    return [p.key for p in judge_pages(pages, WRITES) if p.result == "violation"]


def test_files_read_page_by_page_each_once_pass() -> None:
    assert page_violations([page(["f0", "f1"], 3), page(["new"], 3)]) == []


def test_a_file_shifted_onto_two_pages_is_a_violation() -> None:
    assert page_violations([page(["f0", "f1"], 3), page(["f1"], 3)]) == ["u-f1", "u"]


def test_a_file_shifted_out_of_sight_between_pages_is_a_violation() -> None:
    assert page_violations([page(["new", "f0"], 3), page(["other"], 3)]) == ["u-f1"]


def test_pages_that_disagree_on_the_total_are_a_violation() -> None:
    assert page_violations([page(["f0", "f1"], 4), page(["new"], 3)]) == ["u"]
