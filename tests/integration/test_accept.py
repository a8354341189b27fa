"""Accepting critical writes at a secondary site: validation, auth, idempotency, and that a
write never waits on the WAN."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, serve

FILE = {
    "name": "scan_0001.fits",
    "size_bytes": 1024,
    "checksum": "sha256:00112233445566778899",
    "file_type": "fits",
    "instrument_module_id": 1,
}

EMPTY = {"stream": 0, "overlay": 0, "dead": 0, "awaiting_replica": 0, "idempotency": 0}


async def test_start_answers_with_final_id_and_reads_back_at_once(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post(
            "/executed_obs_units/start",
            json={"obs_unit_id": 1, "instrument_module_id": 2, "conditions": {"tau": 0.05}},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "buffered"
        assert uuid.UUID(body["id"]).version == 7
        assert uuid.UUID(body["tx_id"]).version == 7
        got = (await http.get(f"/executed_obs_units/{body['id']}")).json()
        assert got["status"] == "running"
        assert got["conditions"] == {"tau": 0.05}
        assert got["site_id"] == 1
        assert got["created_by"] == "test-operator"


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/executed_obs_units/start", {}, "obs_unit_id"),
        ("/executed_obs_units/start", {"obs_unit_id": "x"}, "obs_unit_id"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "start_time": "2026-01-01T00:00:00"}, "start_time"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "bogus": 1}, "bogus"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "mean_pwv_mm": -1}, "mean_pwv_mm"),
        ("/raw_data_files", {**FILE, "relative_path": "a/b.fits"}, "executed_obs_unit_id"),
        ("/raw_data_files", {**FILE, "relative_path": "/abs.fits", "executed_obs_unit_id": str(uuid.uuid4())}, "relative_path"),
        ("/raw_data_files", {**FILE, "size_bytes": -5, "relative_path": "a", "executed_obs_unit_id": str(uuid.uuid4())}, "size_bytes"),
        ("/raw_data_files/bulk", {"files": []}, "files"),
        ("/raw_data_files", {**FILE, "file_type": "fi\u0000ts", "relative_path": "a", "executed_obs_unit_id": str(uuid.uuid4())}, "file_type"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "conditions": {"note": "a\u0000b"}}, "conditions"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "conditions": {"x": 2**64}}, "conditions"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "conditions": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}, "conditions"),
        ("/raw_data_files", {**FILE, "size_bytes": 2**60, "relative_path": "a", "executed_obs_unit_id": str(uuid.uuid4())}, "size_bytes"),
        ("/raw_data_package", {"name": "p", "executed_obs_unit_id": "not-a-uuid", "instrument_module_id": 1}, "executed_obs_unit_id"),
    ],
)  # fmt: skip
async def test_malformed_body_is_refused_naming_the_field_and_buffers_nothing(
    tokens: Tokens, secondary_settings: Settings, path: str, payload: dict[str, object], field: str
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post(path, json=payload)
        assert r.status_code == 422, r.text
        assert field in r.json()["field"], r.json()
        assert field in r.json()["detail"]
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_non_finite_numbers_are_refused(tokens: Tokens, secondary_settings: Settings) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        for body in (
            b'{"obs_unit_id": 1, "conditions": {"x": NaN}}',
            b'{"obs_unit_id": 1, "mean_pwv_mm": Infinity}',
        ):
            r = await http.post(
                "/executed_obs_units/start",
                content=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": "nan"},
            )
            assert r.status_code == 422, r.text
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_body_that_is_not_json_is_a_422(tokens: Tokens, secondary_settings: Settings) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post(
            "/executed_obs_units/start",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/executed_obs_units/start", {"obs_unit_id": 999999}, "obs_unit_id"),
        ("/executed_obs_units/start", {"obs_unit_id": 1, "instrument_module_id": 999}, "instrument_module_id"),
        # Module 5 belongs to CHAI; obs unit 1 is a Prime-Cam unit.
        ("/executed_obs_units/start", {"obs_unit_id": 1, "instrument_module_id": 5}, "instrument_module_id"),
        ("/raw_data_files", {**FILE, "relative_path": "x.fits", "executed_obs_unit_id": str(uuid.uuid4())}, "executed_obs_unit_id"),
    ],
)  # fmt: skip
async def test_unknown_reference_is_a_422_and_buffers_nothing(
    tokens: Tokens, secondary_settings: Settings, path: str, payload: dict[str, object], field: str
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post(path, json=payload)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_finish_of_unknown_executed_obs_unit_is_404(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.put(f"/executed_obs_units/{uuid.uuid4()}/finish", json={})
        assert r.status_code == 404, r.text
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_finish_twice_is_a_conflict(tokens: Tokens, secondary_settings: Settings) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]
        assert (await http.put(f"/executed_obs_units/{eou}/finish", json={})).status_code == 200
        again = await http.put(f"/executed_obs_units/{eou}/finish", json={})
        assert again.status_code == 409, again.text
        assert again.json()["field"] == "status"


async def test_finish_before_start_is_refused(tokens: Tokens, secondary_settings: Settings) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (
            await http.post(
                "/executed_obs_units/start",
                json={"obs_unit_id": 1, "start_time": "2026-05-01T10:00:00Z"},
            )
        ).json()["id"]
        r = await http.put(
            f"/executed_obs_units/{eou}/finish", json={"end_time": "2026-05-01T09:00:00Z"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "end_time"


@pytest.mark.parametrize(
    ("headers", "expected", "phrase"),
    [
        ({}, 401, "missing Authorization"),
        ({"Authorization": "Basic abc"}, 401, "Bearer"),
        ({"Authorization": "Bearer nonsense"}, 401, "malformed"),
        ({"Authorization": "Bearer ccat_abcdef012345_notthesecret"}, 401, "unknown"),
    ],
)
async def test_missing_or_bad_token_is_401_and_buffers_nothing(
    secondary_settings: Settings, headers: dict[str, str], expected: int, phrase: str
) -> None:
    async with serve(secondary_settings) as url, client(url) as http:
        r = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers)
        assert r.status_code == expected, r.text
        assert phrase in r.json()["detail"]
        assert (await http.get("/obs_units", headers=headers)).status_code == expected
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_viewer_cannot_write_but_can_read(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.viewer) as http:
        r = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        assert r.status_code == 403, r.text
        assert "write:observations" in r.json()["detail"]
        assert (await http.get("/obs_units")).status_code == 200
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY


async def test_same_idempotency_key_twice_gives_the_first_answer_and_one_transaction(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        headers = {"Idempotency-Key": "obs-2026-11-22-0001"}
        first = await http.post(
            "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers
        )
        second = await http.post(
            "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers
        )
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        state = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert state["stream"] == 1
        assert state["overlay"] == 1


async def test_concurrent_retries_with_one_idempotency_key_buffer_once(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        headers = {"Idempotency-Key": "burst-1"}
        answers = await asyncio.gather(
            *[
                http.post("/executed_obs_units/start", json={"obs_unit_id": 2}, headers=headers)
                for _ in range(10)
            ]
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["tx_id"] for a in answers}) == 1
    state = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
    assert state["stream"] == 1


async def test_idempotency_key_reused_with_another_body_is_refused(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        headers = {"Idempotency-Key": "k-1"}
        ok = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers)
        assert ok.status_code == 201
        clash = await http.post(
            "/executed_obs_units/start", json={"obs_unit_id": 2}, headers=headers
        )
        assert clash.status_code == 422, clash.text
        assert clash.json()["field"] == "Idempotency-Key"
    assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
        "stream"
    ] == 1


async def test_idempotency_keys_are_scoped_per_token(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url:
        headers = {"Idempotency-Key": "shared"}
        async with client(url, tokens.operator) as a, client(url, tokens.admin) as b:
            first = await a.post(
                "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers
            )
            other = await b.post(
                "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers
            )
        assert first.json()["tx_id"] != other.json()["tx_id"]


async def test_duplicate_path_among_buffered_files_is_a_409(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]
        path = f"{secondary_settings.site_name}/dup.fits"
        first = await http.post(
            "/raw_data_files", json={**FILE, "relative_path": path, "executed_obs_unit_id": eou}
        )
        assert first.status_code == 201, first.text
        second = await http.post(
            "/raw_data_files", json={**FILE, "relative_path": path, "executed_obs_unit_id": eou}
        )
        assert second.status_code == 409, second.text
        assert second.json()["field"] == "relative_path"
    assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
        "stream"
    ] == 2


async def test_critical_writes_complete_while_main_is_unreachable(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    """With the WAN down (packets held indefinitely), a write that touched main would hang
    past the client's timeout; buffered writes complete and read back."""
    stack.wan.down()
    async with serve(secondary_settings) as url, client(url, tokens.operator, timeout_s=5) as http:
        eou = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        assert eou.status_code == 201, eou.text
        eou_id = eou.json()["id"]
        files = await http.post(
            "/raw_data_files/bulk",
            json={
                "files": [
                    {**FILE, "relative_path": f"{eou_id}/{i}.fits", "executed_obs_unit_id": eou_id}
                    for i in range(20)
                ]
            },
        )
        assert files.status_code == 201, files.text
        finish = await http.put(f"/executed_obs_units/{eou_id}/finish", json={"status": "success"})
        assert finish.status_code == 200, finish.text
        listed = await http.get("/raw_data_files", params={"executed_obs_unit_id": eou_id})
        assert listed.json()["total"] == 20
        assert (await http.get(f"/executed_obs_units/{eou_id}")).json()["status"] == "success"
        health = (await http.get("/health")).json()
        assert health["status"] == "ok"
        assert health["buffer"]["depth"] == 3


async def test_retried_finish_with_its_key_gets_the_first_answer_not_a_conflict(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    """The retry must not be validated against the state the first request created."""
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]
        key = {"Idempotency-Key": f"finish-{eou}"}
        first = await http.put(
            f"/executed_obs_units/{eou}/finish", json={"status": "success"}, headers=key
        )
        again = await http.put(
            f"/executed_obs_units/{eou}/finish", json={"status": "success"}, headers=key
        )
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()
    assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
        "stream"
    ] == 2


async def test_package_whose_files_overflow_the_total_size_is_refused(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["id"]
        big = {**FILE, "size_bytes": 2**53, "executed_obs_unit_id": eou}
        ids: list[str] = []
        for batch in range(2):
            r = await http.post(
                "/raw_data_files/bulk",
                json={
                    "files": [
                        {**big, "name": "f", "relative_path": f"{eou}/{batch}/{i}"}
                        for i in range(600)
                    ]
                },
            )
            assert r.status_code == 201, r.text[:300]
            ids += r.json()["ids"]
        r = await http.post(
            "/raw_data_package",
            json={
                "name": f"huge-{eou}",
                "executed_obs_unit_id": eou,
                "instrument_module_id": 1,
                "raw_data_file_ids": ids,
            },
        )
        assert r.status_code == 422, r.text[:300]
        assert r.json()["field"] == "files"
    assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
        "stream"
    ] == 3
