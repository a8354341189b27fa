"""What a failed database call says about the database: it refused a value the request
carried (the client's problem, a 422), or it could not be reached (an outage, a 503).
Everything else is a bug."""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def refused_value(exc: DBAPIError) -> str | None:
    """Why the driver or the server refused a value sent with the statement, if that is
    what failed: asyncpg refuses to encode one (an int above int4, say) with its DataError,
    which SQLAlchemy wraps as an InterfaceError like a lost connection; PostgreSQL refuses
    one with a data exception (SQLSTATE class 22)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    for candidate in (exc.orig, cause):
        if isinstance(candidate, (asyncpg_base.DataError, asyncpg.DataError)):
            return str(candidate)
    return None


def unreachable(exc: BaseException) -> bool:
    """The call failed for want of the database, not because of what it asked."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    if not isinstance(exc, DBAPIError) or refused_value(exc) is not None:
        return False
    return isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated
