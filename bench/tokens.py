"""Service tokens the benchmarks issue on main before they send anything: an operator's for
writes (``bench.run`` and the benchmarks that reuse its pieces) and, for ``bench.ws_fanout``,
an observer's for the WebSocket monitors."""

from __future__ import annotations

import asyncio

from ccat_api.auth.tokens import issue_service_token
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import Stack


def issue_operator_token(stack: Stack) -> str:
    async def make() -> str:
        db = PrimaryDatabase(
            make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="b")
        )
        try:
            return (await issue_service_token(db, "bench-operator", Role.OPERATOR.value)).plaintext
        finally:
            await db.dispose()

    return asyncio.run(make())


def issue_ws_tokens(stack: Stack) -> tuple[str, str]:
    """An operator token for the writes and an observer token (read:buffer) for monitors."""

    async def make() -> tuple[str, str]:
        db = PrimaryDatabase(
            make_engine(
                stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="bench"
            )
        )
        try:
            writer = await issue_service_token(db, "bench-ws-writer", Role.OPERATOR.value)
            watcher = await issue_service_token(db, "bench-ws-monitor", Role.OBSERVER.value)
        finally:
            await db.dispose()
        return writer.plaintext, watcher.plaintext

    return asyncio.run(make())
