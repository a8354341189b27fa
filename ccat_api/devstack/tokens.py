"""Service tokens issued straight on a local stack's main database, for the demo, the chaos
campaign and the benchmarks: they need their tokens before any gateway is asked for one."""

from __future__ import annotations

from collections.abc import Mapping

from ccat_api.auth.tokens import issue_service_token
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.devstack.stack import Stack


async def issue_tokens(
    stack: Stack, wanted: Mapping[str, str], *, application_name: str
) -> dict[str, str]:
    """A service account and token per entry of ``wanted`` (account name -> role); the
    plaintext tokens by account name."""
    db = PrimaryDatabase(
        make_engine(
            stack.main_db.url(),
            pool_size=1,
            connect_timeout_s=5,
            application_name=application_name,
        )
    )
    try:
        return {
            name: (await issue_service_token(db, name, role)).plaintext
            for name, role in wanted.items()
        }
    finally:
        await db.dispose()
