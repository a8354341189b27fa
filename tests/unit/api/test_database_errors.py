"""How the gateway answers when the database refuses a statement: a value the driver or the
server refuses is bad input (a 422, never a 503 that a client would retry for ever); a lost or
unreachable database is a 503 with Retry-After; anything else stays a 500."""

from __future__ import annotations

import functools

import asyncpg
import httpx
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ccat_api.app import create_app
from ccat_api.config import Settings

# What the one test route raises, set by each test.
RAISED: list[BaseException] = []


@functools.cache
def _app() -> FastAPI:
    app = create_app(Settings(development=True))

    @app.get("/raises")
    async def raises() -> None:
        raise RAISED[-1]

    return app


def _wrapped(
    kind: type[DBAPIError], cause: BaseException, *, connection_invalidated: bool = False
) -> DBAPIError:
    """As SQLAlchemy raises it: its adapter's exception, caused by asyncpg's."""
    adapted = Exception(str(cause))
    adapted.__cause__ = cause
    return kind(
        "SELECT $1", (3_000_000_000,), adapted, connection_invalidated=connection_invalidated
    )


async def _status_of(exc: BaseException) -> tuple[int, httpx.Response]:
    RAISED.append(exc)
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        r = await http.get("/raises")
    return r.status_code, r


@pytest.mark.parametrize(
    "exc",
    [
        # What asyncpg raises for 3000000000 sent as an int4 parameter: before, a 503.
        _wrapped(
            InterfaceError,
            asyncpg_base.DataError(
                "invalid input for query argument $1: 3000000000 (value out of int32 range)"
            ),
        ),
        _wrapped(
            DBAPIError, asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range")
        ),
        _wrapped(
            DBAPIError, asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax")
        ),
    ],
    ids=["driver refuses an int above int4", "server: out of range", "server: invalid text"],
)
async def test_a_value_the_database_refuses_is_a_422(exc: BaseException) -> None:
    status, r = await _status_of(exc)
    assert status == 422, r.text
    assert r.json()["code"] == "unprocessable"
    assert "Retry-After" not in r.headers


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError("closed")),
        _wrapped(OperationalError, ConnectionRefusedError(111, "Connection refused")),
        _wrapped(
            DBAPIError,
            asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
            connection_invalidated=True,
        ),
        _wrapped(InterfaceError, asyncpg_base.ClientConfigurationError("no such host")),
    ],
    ids=["connection lost", "main unreachable", "connection invalidated", "client config"],
)
async def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after(
    exc: BaseException,
) -> None:
    status, r = await _status_of(exc)
    assert status == 503, r.text
    assert int(r.headers["Retry-After"]) > 0


async def test_any_other_database_error_stays_a_500() -> None:
    status, r = await _status_of(
        _wrapped(DBAPIError, asyncpg.exceptions.UndefinedColumnError("column x does not exist"))
    )
    assert status == 500, r.text
