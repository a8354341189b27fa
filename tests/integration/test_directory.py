"""The site's directory of users and sessions, read from its replica with a cache: what it
does not know yet is asked again, so an account or session made at main a moment ago works
here as soon as it has replicated, not a cache lifetime later."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from ccat_api.auth.directory import Directory
from ccat_api.db.engines import ReadDatabase, make_engine
from ccat_api.devstack.stack import Stack


@pytest.fixture
async def directory(stack: Stack) -> AsyncIterator[Directory]:
    db = ReadDatabase(
        make_engine(stack.replica.url(), pool_size=1, connect_timeout_s=5, application_name="t")
    )
    try:
        # Far longer than the test: whatever it caches stays cached.
        yield Directory(db, cache_ttl_s=3600)
    finally:
        await db.dispose()


async def test_a_user_and_session_unknown_a_moment_ago_are_found_once_replicated(
    stack: Stack, directory: Directory
) -> None:
    login, session = f"new-{uuid.uuid4().hex[:12]}", uuid.uuid4()
    # An id the sequence hands out once, so no other test's account can take it.
    next_id = int(stack.main_db.psql("SELECT nextval('users_id_seq')", user="ccat").split()[0])
    assert await directory.user(next_id) is None
    assert await directory.session_open(str(session)) is False

    stack.main_db.psql(
        f"INSERT INTO users (id, login, role) VALUES ({next_id}, '{login}', 'viewer');"
        "INSERT INTO user_sessions (id, user_id, refresh_hash, expires_at)"
        f" VALUES ('{session}', {next_id}, '{uuid.uuid4().hex}', now() + interval '1 hour')",
        user="ccat",
    )
    stack.wait_replica_caught_up()
    found = await directory.user(next_id)
    assert found is not None
    assert (found.login, found.role, found.active) == (login, "viewer", True)
    assert await directory.session_open(str(session)) is True


async def test_an_ended_session_stays_ended_while_cached(
    stack: Stack, directory: Directory
) -> None:
    session = uuid.uuid4()
    stack.main_db.psql(
        "INSERT INTO user_sessions (id, user_id, refresh_hash, expires_at, revoked_at)"
        f" VALUES ('{session}', 1, '{uuid.uuid4().hex}', now() + interval '1 hour', now())",
        user="ccat",
    )
    stack.wait_replica_caught_up()
    assert await directory.session_open(str(session)) is False
    # Reopened behind the cache's back: the cached "ended" answer holds for its lifetime.
    stack.main_db.psql(
        f"UPDATE user_sessions SET revoked_at = NULL WHERE id = '{session}'", user="ccat"
    )
    stack.wait_replica_caught_up()
    assert await directory.session_open(str(session)) is False
