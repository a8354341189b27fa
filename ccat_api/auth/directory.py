"""Users, role permissions and sessions as a site reads them: from its local database (the
replica at a secondary site) with short in-process caches.

Authentication therefore works while main is unreachable, and a change made at main
(revocation, a role change, a disabled account) takes effect at a site once it has replicated
there and the cache entry has expired (``token_cache_ttl_s``). While the database cannot be
reached, the last answer read is used (``auth/last_known.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from ccat_api.auth.last_known import LastKnown
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
        self._roles: LastKnown[str, dict[str, frozenset[str]]] = LastKnown(
            "role permissions", ttl_s=cache_ttl_s, maxsize=1
        )
        self._users: LastKnown[int, UserRecord] = LastKnown("user", ttl_s=cache_ttl_s)
        # session id -> when it stops being open (its expiry, or when it was ended)
        self._sessions: LastKnown[str, datetime] = LastKnown("session", ttl_s=cache_ttl_s)

    async def role_permissions(self, role: str) -> frozenset[str]:
        roles = await self._roles.get("all", self._load_roles)
        return roles.get(role, frozenset()) if roles is not None else frozenset()

    async def _load_roles(self) -> dict[str, frozenset[str]]:
        async with self._db.connect() as conn:
            rows = await conn.execute(sa.select(RolePermission.role, RolePermission.permission))
        loaded: dict[str, set[str]] = {}
        for row in rows:
            loaded.setdefault(row.role, set()).add(row.permission)
        return {name: frozenset(perms) for name, perms in loaded.items()}

    async def user(self, user_id: int) -> UserRecord | None:
        # An unknown user is not kept: an account made at main a moment ago (a first GitHub
        # login) may not have replicated here yet, and must work as soon as it has.
        return await self._users.get(user_id, lambda: self._load_user(user_id))

    async def _load_user(self, user_id: int) -> UserRecord | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(User.id, User.login, User.role, User.active).where(User.id == user_id)
                )
            ).one_or_none()
        return None if row is None else UserRecord(row.id, row.login, row.role, row.active)

    def forget_session(self, session_id: str) -> None:
        """This process ended the session: stop trusting its cached state at once."""
        self._sessions.forget(session_id)

    async def session_open(self, session_id: str) -> bool:
        """False once the session was ended (logout) or expired, as the site sees it."""
        expires_at = await self._sessions.get(session_id, lambda: self._load_session(session_id))
        return expires_at is not None and expires_at > datetime.now(UTC)

    async def _load_session(self, session_id: str) -> datetime | None:
        """When the session stops being open: its expiry, or when it was ended. None for one
        this site has not seen yet (started at main a moment ago), which is not kept."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(UserSession.revoked_at, UserSession.expires_at).where(
                        UserSession.id == session_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        closes: datetime = row.expires_at if row.revoked_at is None else row.revoked_at
        return closes
