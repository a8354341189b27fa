"""Database handles with distinct types for the two roles a database plays for a gateway.

``ReadDatabase`` is where reads go (the local replica at a secondary site, main at the main
site); ``PrimaryDatabase`` is main itself, used for direct writes at the main site and for
administrative commands. Keeping them distinct types makes handing a replica to code that
writes a type error rather than a runtime surprise on a read-only standby.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

# libpq's TLS parameters, as an operator writes them in a database URL (and asyncpg reads in
# a DSN); SQLAlchemy would hand them to asyncpg.connect() as keywords it does not take.
_TLS_PARAMETERS = ("sslmode", "sslrootcert")


def tls_context(url: str) -> tuple[str, ssl.SSLContext | str | None]:
    """The URL without libpq's ``sslmode``/``sslrootcert``, and what asyncpg's ``ssl=`` takes
    for them: a context that checks the server's certificate against ``sslrootcert`` (and,
    for ``verify-full``, that it names the host dialled), or the mode itself when no CA is
    named. A ``verify-*`` mode without a readable CA file fails here, before any connection,
    as libpq refuses it."""
    parsed = make_url(url)
    mode = parsed.query.get("sslmode")
    root_cert = parsed.query.get("sslrootcert")
    if mode is None and root_cert is None:
        return url, None
    stripped = parsed.difference_update_query(_TLS_PARAMETERS)
    text = stripped.render_as_string(hide_password=False)
    if not isinstance(mode, str | None) or not isinstance(root_cert, str | None):
        raise ValueError("sslmode and sslrootcert may each appear once in a database URL")
    if mode not in ("verify-ca", "verify-full"):
        return text, mode
    if not root_cert:
        raise ValueError(f"sslmode={mode} needs sslrootcert (the CA that signed the server's)")
    context = ssl.create_default_context(cafile=root_cert)
    context.check_hostname = mode == "verify-full"
    return text, context


def make_engine(
    url: str,
    *,
    pool_size: int,
    connect_timeout_s: float,
    application_name: str,
    command_timeout_s: float | None = None,
) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout_s,
        "server_settings": {"application_name": application_name},
    }
    if command_timeout_s is not None:
        connect_args["command_timeout"] = command_timeout_s
    url, tls = tls_context(url)
    if tls is not None:
        connect_args["ssl"] = tls
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # The pool's reset-on-return is a ROLLBACK round trip; our connections end every
        # unit of work with an explicit commit or rollback already.
        pool_reset_on_return=None,
        connect_args=connect_args,
    )


class _Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            try:
                yield conn
            finally:
                await conn.rollback()

    async def dispose(self) -> None:
        await self.engine.dispose()


class ReadDatabase(_Database):
    """Read-only use: the site's local replica, or main at the main site."""


class PrimaryDatabase(_Database):
    """Main, read-write."""

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def call(self, statement: Executable, params: dict[str, Any]) -> Any:
        """One statement committed on its own (no BEGIN/COMMIT round trips): for server-side
        functions that are a whole unit of work."""
        async with self.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await autocommit.scalar(statement, params)
