"""The last answer is served only while the database is unreachable, and never for a
credential the database refused or no longer knows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from ccat_api.auth.last_known import LastKnown
from ccat_api.db.failures import unreachable
from ccat_api.errors import Unauthorized

DOWN = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def run(
    cache: LastKnown[str, int], key: str, load: Callable[[], Awaitable[int | None]]
) -> int | None:
    return asyncio.run(cache.get(key, load))


def answers(*results: int | BaseException | None) -> Callable[[], Awaitable[int | None]]:
    """A loader giving ``results`` in turn (raising the exceptions), counting its calls."""
    pending = list(results)

    async def load() -> int | None:
        load.calls += 1  # type: ignore[attr-defined]
        result = pending.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    load.calls = 0  # type: ignore[attr-defined]
    return load


def test_without_a_fresh_cache_every_lookup_asks_and_an_outage_gets_the_last_answer() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=0)
    load = answers(1, 2, DOWN, DOWN)
    assert run(cache, "k", load) == 1
    assert run(cache, "k", load) == 2
    assert run(cache, "k", load) == 2
    assert run(cache, "k", load) == 2
    assert load.calls == 4  # type: ignore[attr-defined]


def test_a_fresh_answer_is_not_asked_again() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=3600)
    load = answers(7)
    assert run(cache, "k", load) == 7
    assert run(cache, "k", load) == 7
    assert load.calls == 1  # type: ignore[attr-defined]


def test_an_outage_with_nothing_known_is_an_outage() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=0)
    run(cache, "other", answers(1))
    with pytest.raises(OperationalError):
        run(cache, "k", answers(DOWN))


def test_a_refusal_drops_what_was_known() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=0)
    run(cache, "k", answers(1))
    with pytest.raises(Unauthorized):
        run(cache, "k", answers(Unauthorized("API token revoked")))
    with pytest.raises(OperationalError):
        run(cache, "k", answers(DOWN))


def test_no_longer_found_drops_what_was_known() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=0)
    run(cache, "k", answers(1))
    assert run(cache, "k", answers(None)) is None
    with pytest.raises(OperationalError):
        run(cache, "k", answers(DOWN))


def test_forget_drops_fresh_and_known() -> None:
    cache: LastKnown[str, int] = LastKnown("thing", ttl_s=3600)
    run(cache, "k", answers(1))
    cache.forget("k")
    load = answers(DOWN)
    with pytest.raises(OperationalError):
        run(cache, "k", load)
    assert load.calls == 1  # type: ignore[attr-defined]


def test_only_a_lost_database_counts_as_unreachable() -> None:
    assert unreachable(DOWN)
    assert unreachable(ConnectionRefusedError())
    assert unreachable(TimeoutError())
    assert not unreachable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not unreachable(Unauthorized("unknown API token"))
    # asyncpg refusing to encode a value surfaces as an InterfaceError too: not an outage.
    refused = asyncpg.DataError("invalid input for query argument $1: 2147483648")
    assert not unreachable(InterfaceError("SELECT", {}, refused))
