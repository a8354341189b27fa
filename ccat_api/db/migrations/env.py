"""Alembic environment: migrations always run against the main database (replicas follow)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ccat_api.db.engines import tls_context
from ccat_api.db.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    # libpq's sslmode/sslrootcert, which asyncpg does not take in a URL, as an SSL context.
    url, tls = tls_context(config.get_main_option("sqlalchemy.url") or "")
    engine = create_async_engine(url, connect_args={} if tls is None else {"ssl": tls})
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        # Also when a migration refuses (a contract step): no connection left behind.
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
