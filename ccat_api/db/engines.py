"""Database handles with distinct types for the two roles a database plays for a gateway.

``ReadDatabase`` is where reads go (the local replica at a secondary site, main at the main
site); ``PrimaryDatabase`` is main itself, used for direct writes at the main site and for
administrative commands. Keeping them distinct types makes handing a replica to code that
writes a type error rather than a runtime surprise on a read-only standby.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable


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
