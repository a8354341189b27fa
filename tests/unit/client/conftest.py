"""Fixtures of the spooled-write tests (test_spooled_writes_*.py): a client of each kind
with a spool, and the scripted gateway it talks to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.client.fake_gateway import Kind
from tests.unit.client.spooled_instrument import Gateway, Instrument


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> Kind:
    kind: Kind = request.param
    return kind


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture
def instrument(kind: Kind, gateway: Gateway, tmp_path: Path) -> Iterator[Instrument]:
    opened = Instrument(kind, gateway, tmp_path / "spool.db")
    yield opened
    opened.close()
