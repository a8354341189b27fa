"""A database or Redis that a command cannot reach (refused, unresolvable, timed out, the
login refused), told in one line instead of a traceback. ``ccat_api.cli.main`` asks this of
whatever ends a command, so no command handles it itself; anything else keeps its traceback,
which is what a bug needs."""

from __future__ import annotations

import errno
import socket
import traceback

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from ccat_api.errors import first_line

# Refused before any query: the server is not there, or will not have this client.
_POSTGRES_REFUSALS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)
_NETWORK_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ECONNABORTED}


def describe_unreachable(exc: BaseException) -> str | None:
    """``cannot reach <what>: <reason>`` when ``exc`` (or every exception in its group) is a
    backend out of reach; None for anything else."""
    if isinstance(exc, BaseExceptionGroup):
        lines = {describe_unreachable(inner) for inner in exc.exceptions}
        return lines.pop() if len(lines) == 1 and None not in lines else None
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return f"cannot reach Redis: {first_line(exc, 'no answer')}"
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return describe_unreachable(exc.orig) if exc.orig is not None else None
    if isinstance(exc, _POSTGRES_REFUSALS):
        return f"cannot use the database: {first_line(exc)}"
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    ):
        return f"cannot reach {_whose(exc)}: {first_line(exc, 'no answer')}"
    return None


def _whose(exc: BaseException) -> str:
    # A bare socket error does not say whose connection failed; the library that raised it
    # does.
    frames = traceback.walk_tb(exc.__traceback__)
    modules = [frame.f_globals.get("__name__", "") for frame, _ in frames]
    for module in reversed(modules):
        if module.startswith(("asyncpg", "sqlalchemy", "alembic")):
            return "the database"
        if module.startswith("redis"):
            return "Redis"
    return "a server"
