"""Hostile but valid JSON, lax forms and the framework's own refusals, at both sites
(invariant 9): a 422 in the one error shape that names where, and nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.bad_input import EMPTY, answer_of, error_fields, main_row_counts
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, serve

# --- hostile but valid JSON, lax forms and the framework's own refusals, at both sites ------


@pytest.fixture(params=["secondary", "main"])
def any_site(
    request: pytest.FixtureRequest, secondary_settings: Settings, main_settings: Settings
) -> Settings:
    return secondary_settings if request.param == "secondary" else main_settings


LONE = b'"\\ud800"'  # JSON text may spell it; no UTF-8 encoder will take the string it makes


async def test_a_lone_surrogate_anywhere_in_a_body_is_a_422_naming_where_and_writes_nothing(
    stack: Stack, tokens: Tokens, any_site: Settings
) -> None:
    before = await main_row_counts(stack)
    cases = [
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {"seeing": ' + LONE + b"}}", "conditions.seeing"),
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {"a": [1, ' + LONE + b"]}}", "conditions.a[1]"),
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {' + LONE + b": 1}}", "conditions.\\ud800"),
        ("PUT", "/users/me/preferences", b'{"theme": ' + LONE + b"}", "theme"),
        ("POST", "/api/transfer/transfers", b'{"raw_data_package_id": ' + LONE + b', "route_id": 1}', "raw_data_package_id"),
    ]  # fmt: skip
    failures = []
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for method, path, body, field in cases:
            r = await http.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            answer = answer_of(r)
            if (
                r.status_code != 422
                or answer.get("field") != field
                or "surrogate" not in answer.get("detail", "")
            ):
                failures.append(f"{method} {path} {field} -> {r.status_code} {r.text[:200]}")
    assert failures == []
    if any_site.is_secondary:
        assert await buffer_state(any_site.redis_url, any_site.site_name) == EMPTY
    assert await main_row_counts(stack) == before


async def test_any_json_a_free_form_field_takes_reads_back_as_it_was_sent(
    tokens: Tokens, any_site: Settings
) -> None:
    conditions = {
        "emoji": "\U0001f600, sent as a surrogate pair escape",
        "escapes": 'tab\tquote"backslash\\ and \u2028',
        # jsonb keeps a number's value, not its spelling (1e20 comes back as
        # 100000000000000000000): the same JSON number, and here the same Python value.
        "numbers": [0, -1, 2**63 - 1, -(2**63), 1.5e-300, 1e20, 0.1, -0.0],
        "nested": {"a": {"b": {"c": [None, True, False, {}]}}},
        "": "an empty key",
    }
    async with serve(any_site) as url, client(url, tokens.operator) as http:
        # ensure_ascii spells every non-ASCII character as an escape, and characters beyond
        # the BMP as surrogate pairs: the escapes a JSON parser must join.
        r = await http.post(
            "/executed_obs_units/start",
            content=json.dumps({"obs_unit_id": 1, "conditions": conditions}, ensure_ascii=True),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text
        read = await http.get(f"/executed_obs_units/{r.json()['id']}")
        assert read.status_code == 200, read.text
        assert read.json()["conditions"] == conditions


async def test_lax_forms_of_ids_dates_and_booleans_are_refused_naming_the_field(
    stack: Stack, tokens: Tokens, any_site: Settings
) -> None:
    before = await main_row_counts(stack)
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/executed_obs_units/start", {"obs_unit_id": "1"}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": True}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": 1.0}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": 1, "start_time": 0}, "start_time"),
        ("GET", "/sources/1.0", None, "item_id"),
        ("PATCH", "/sources/1.0", {"description": "x"}, "item_id"),
        ("DELETE", "/sources/1.0", None, "item_id"),
        ("GET", "/sources/1/visibility?date=0", None, "date"),
        ("GET", "/obs_units?limit=1.0", None, "limit"),
        ("PATCH", "/users/1", {"active": 0}, "active"),
    ]
    failures = []
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for method, path, body, field in cases:
            r = await http.request(method, path, json=body)
            if r.status_code != 422 or field not in error_fields(r):
                failures.append(f"{method} {path} {body} -> {r.status_code} {r.text[:200]}")
        # The canonical forms still work: the refusals are about form, not about the values.
        assert (await http.get("/sources/1")).status_code == 200
        assert (await http.get("/sources/1/visibility?date=2026-11-22")).status_code == 200
    assert failures == []
    if any_site.is_secondary:
        assert await buffer_state(any_site.redis_url, any_site.site_name) == EMPTY
    assert await main_row_counts(stack) == before


async def test_the_frameworks_own_refusals_come_in_the_one_error_shape(
    tokens: Tokens, any_site: Settings
) -> None:
    shape = {"detail", "field", "code"}
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for body in (b"{not json", b'{"obs_unit_id": "\xff"}', b"[" * 100_000):
            r = await http.post(
                "/executed_obs_units/start",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "invalid_json"
            assert r.json()["field"] == "body"
            assert set(r.json()) == shape
        # A path served by one route per method: Allow names them all, whichever matched.
        r = await http.put("/api/transfer/transfers")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, POST"
        assert set(r.json()) == shape
        assert r.json()["code"] == "method_not_allowed"
        r = await http.delete("/users/me/preferences")
        assert r.headers["allow"] == "GET, PUT"
        # A literal path is its own resource, though a sibling's template matches it too.
        r = await http.get("/executed_obs_units/start")
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
        r = await http.get("/no/such/route")
        assert r.status_code == 404
        assert set(r.json()) == shape
        assert r.json()["code"] == "not_found"
