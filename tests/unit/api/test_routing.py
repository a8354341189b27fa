"""The route class that refuses lone surrogates before validation, and the guarantee that
every router of the gateway uses it (a router made without it would let them reach the
envelope encoder, a 500)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

import ccat_api.api
from ccat_api.api.routing import CheckedRoute, lone_surrogate_at, refuse_lone_surrogates


def test_every_router_of_the_gateway_uses_the_checked_route_class() -> None:
    routers = {}
    for module_info in pkgutil.iter_modules(ccat_api.api.__path__):
        module = importlib.import_module(f"ccat_api.api.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, APIRouter):
                routers[f"{module_info.name}.{name}"] = value
    assert len(routers) >= 10
    assert {name: r.route_class for name, r in routers.items()} == {
        name: CheckedRoute for name in routers
    }


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"conditions": {"a": "\\ud800"}}', ("conditions", "a")),
        ('{"files": [{"name": "ok"}, {"name": "x\\udfff"}]}', ("files", 1, "name")),
        ('{"\\udc00key": 1}', ("\\udc00key",)),
        ('["fine", "\\ud83d\\ude00", "\\ud83d"]', (2,)),
    ],
)
def test_a_lone_surrogate_is_found_where_it_sits(text: str, where: tuple[object, ...]) -> None:
    assert lone_surrogate_at(json.loads(text)) == where


def test_paired_surrogates_and_plain_text_pass() -> None:
    assert lone_surrogate_at(json.loads('{"emoji": "\\ud83d\\ude00", "n": 1, "x": [null]}')) is None
    refuse_lone_surrogates(b'{"emoji": "\\ud83d\\ude00"}')
    refuse_lone_surrogates(b"not json at all \\u")


def test_a_body_with_a_lone_surrogate_is_refused_with_its_location() -> None:
    with pytest.raises(RequestValidationError) as refused:
        refuse_lone_surrogates(b'{"conditions": {"seeing": "\\udbff"}}')
    (error,) = refused.value.errors()
    assert error["loc"] == ("body", "conditions", "seeing")
    assert "surrogate" in error["msg"]
