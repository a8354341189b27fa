"""Users, role permissions and sessions as a site reads them: from its local database (the
replica at a secondary site) with short in-process caches.

Authentication therefore works while main is unreachable, and a change made at main
(revocation, a role change, a disabled account) takes effect at a site once it has replicated
there and the cache entry has expired (``token_cache_ttl_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cachetools import TTLCache

from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import RolePermission, User, UserSession


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    login: str
    role: str
    active: bool


class Directory:
    def __init__(self, db: ReadDatabase, *, cache_ttl_s: float) -> None:
        self._db = db
        ttl = max(cache_ttl_s, 0.000_001)
        self._cached = cache_ttl_s > 0
        self._roles: TTLCache[str, dict[str, frozenset[str]]] = TTLCache(maxsize=1, ttl=ttl)
        self._users: TTLCache[int, UserRecord] = TTLCache(maxsize=10_000, ttl=ttl)
        self._sessions: TTLCache[str, bool] = TTLCache(maxsize=10_000, ttl=ttl)

    async def role_permissions(self, role: str) -> frozenset[str]:
        roles = self._roles.get("all") if self._cached else None
        if roles is None:
            async with self._db.connect() as conn:
                rows = await conn.execute(sa.select(RolePermission.role, RolePermission.permission))
            loaded: dict[str, set[str]] = {}
            for row in rows:
                loaded.setdefault(row.role, set()).add(row.permission)
            roles = {name: frozenset(perms) for name, perms in loaded.items()}
            self._roles["all"] = roles
        return roles.get(role, frozenset())

    async def user(self, user_id: int) -> UserRecord | None:
        if self._cached and user_id in self._users:
            return self._users[user_id]
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(User.id, User.login, User.role, User.active).where(User.id == user_id)
                )
            ).one_or_none()
        if row is None:
            # Not cached: an account made at main a moment ago (a first GitHub login) may not
            # have replicated here yet, and must work as soon as it has.
            return None
        found = UserRecord(row.id, row.login, row.role, row.active)
        self._users[user_id] = found
        return found

    def forget_session(self, session_id: str) -> None:
        """This process ended the session: stop trusting its cached state at once."""
        self._sessions.pop(session_id, None)

    async def session_open(self, session_id: str) -> bool:
        """False once the session was ended (logout) or expired, as the site sees it."""
        if self._cached and session_id in self._sessions:
            return self._sessions[session_id]
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(UserSession.revoked_at, UserSession.expires_at).where(
                        UserSession.id == session_id
                    )
                )
            ).one_or_none()
        if row is None:
            # Not cached, like an unknown user: a session started at main a moment ago.
            return False
        is_open = row.revoked_at is None and row.expires_at > datetime.now(UTC)
        self._sessions[session_id] = is_open
        return is_open
