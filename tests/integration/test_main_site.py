"""The main site: the same endpoints write directly to main and answer in the same shape."""

from __future__ import annotations

import uuid

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, fetchval, serve

FILE = {
    "size_bytes": 10,
    "checksum": "sha256:0011223344",
    "file_type": "fits",
    "instrument_module_id": 1,
}


async def test_main_site_applies_writes_directly_in_the_same_shape(
    stack: Stack, tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        r = await http.post("/executed_obs_units/start", json={"obs_unit_id": 3})
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == {"id", "tx_id", "status", "ids"}
        assert body["status"] == "applied"
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT status FROM executed_obs_units WHERE id = $1::uuid",
                body["id"],
            )
            == "running"
        )
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT site FROM applied_transactions WHERE tx_id = $1::uuid",
                body["tx_id"],
            )
            == "main"
        )
        tx = (await http.get(f"/transactions/{body['tx_id']}")).json()
        assert tx["state"] == "applied"
        fin = await http.put(f"/executed_obs_units/{body['id']}/finish", json={})
        assert fin.status_code == 200
        assert fin.json()["status"] == "applied"
        assert (await http.get(f"/executed_obs_units/{body['id']}")).json()["status"] == "success"


async def test_main_site_idempotency_key_returns_the_first_answer(
    stack: Stack, tokens: Tokens, main_settings: Settings
) -> None:
    key = {"Idempotency-Key": f"main-{uuid.uuid4()}"}
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        first = await http.post("/executed_obs_units/start", json={"obs_unit_id": 3}, headers=key)
        again = await http.post("/executed_obs_units/start", json={"obs_unit_id": 3}, headers=key)
        assert first.json() == again.json()
        other = await http.post("/executed_obs_units/start", json={"obs_unit_id": 4}, headers=key)
        assert other.status_code == 422
        assert other.json()["field"] == "Idempotency-Key"
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT count(*) FROM executed_obs_units WHERE id = $1::uuid",
            first.json()["id"],
        )
        == 1
    )


async def test_main_site_refuses_a_duplicate_path_with_409(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 3})).json()["id"]
        body = {
            **FILE,
            "name": "a",
            "relative_path": f"main/{eou}/a.fits",
            "executed_obs_unit_id": eou,
        }
        assert (await http.post("/raw_data_files", json=body)).status_code == 201
        clash = await http.post("/raw_data_files", json=body)
        assert clash.status_code == 409, clash.text
        assert clash.json()["field"] == "relative_path"


async def test_main_site_has_no_buffer_to_list(tokens: Tokens, main_settings: Settings) -> None:
    async with serve(main_settings) as url, client(url, tokens.admin) as http:
        assert (await http.get("/transactions", params={"state": "failed"})).status_code == 404
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["main"]["ok"] is True
        info = (await http.get("/api/site/info")).json()
        assert info["site_type"] == "main"


async def test_main_site_retried_finish_gets_the_first_answer(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 3})).json()["id"]
        key = {"Idempotency-Key": f"main-finish-{eou}"}
        first = await http.put(f"/executed_obs_units/{eou}/finish", json={}, headers=key)
        again = await http.put(f"/executed_obs_units/{eou}/finish", json={}, headers=key)
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()
