"""Users and their preferences in main: people from GitHub, service accounts made by admins.

These are ordinary writes to main (never buffered): at a secondary site they cross the WAN,
and fail with 503 while main is unreachable.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ccat_api.auth.github import GitHubAccount
from ccat_api.db.engines import PrimaryDatabase, ReadDatabase
from ccat_api.db.models import RoleRecord, User, UserPreferences
from ccat_api.errors import Conflict, NotFound, Unprocessable

USER_COLUMNS = (
    User.id,
    User.login,
    User.name,
    User.email,
    User.role,
    User.active,
    User.github_id,
    User.created_at,
    User.last_login_at,
)


async def upsert_github_user(
    db: PrimaryDatabase, account: GitHubAccount, role: str
) -> tuple[int, bool]:
    """Create or update the person behind a GitHub login; their teams decide the role."""
    statement = insert(User).values(
        login=account.login,
        github_id=account.id,
        name=account.name,
        email=account.email,
        role=role,
        last_login_at=sa.func.now(),
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[User.github_id],
        set_={
            "login": statement.excluded.login,
            "name": statement.excluded.name,
            "email": statement.excluded.email,
            "role": statement.excluded.role,
            "last_login_at": sa.func.now(),
            "updated_at": sa.func.now(),
        },
    ).returning(User.id, User.active)
    async with db.begin() as conn:
        row = (await conn.execute(upsert)).one()
    return int(row.id), bool(row.active)


async def _check_role(conn: Any, role: str) -> None:
    if await conn.scalar(sa.select(RoleRecord.name).where(RoleRecord.name == role)) is None:
        raise Unprocessable(f"role: no role named {role!r}", field="role")


async def create_service_account(db: PrimaryDatabase, login: str, role: str, name: str) -> Any:
    async with db.begin() as conn:
        await _check_role(conn, role)
        row = (
            await conn.execute(
                insert(User)
                .values(login=login, name=name or login, role=role)
                .on_conflict_do_nothing(index_elements=[User.login])
                .returning(*USER_COLUMNS)
            )
        ).one_or_none()
    if row is None:
        raise Conflict(f"login: a user named {login!r} exists", field="login")
    return row


async def update_user(
    db: PrimaryDatabase, user_id: int, *, role: str | None, active: bool | None
) -> Any:
    changes: dict[str, Any] = {"updated_at": sa.func.now()}
    if role is not None:
        changes["role"] = role
    if active is not None:
        changes["active"] = active
    async with db.begin() as conn:
        if role is not None:
            await _check_role(conn, role)
        row = (
            await conn.execute(
                sa.update(User).where(User.id == user_id).values(changes).returning(*USER_COLUMNS)
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row


async def list_users(db: ReadDatabase) -> list[Any]:
    async with db.connect() as conn:
        return list(await conn.execute(sa.select(*USER_COLUMNS).order_by(User.id)))


async def get_preferences(db: ReadDatabase, user_id: int) -> dict[str, Any]:
    async with db.connect() as conn:
        found = await conn.scalar(
            sa.select(UserPreferences.preferences).where(UserPreferences.user_id == user_id)
        )
    return dict(found or {})


async def set_preferences(db: PrimaryDatabase, user_id: int, preferences: dict[str, Any]) -> None:
    statement = insert(UserPreferences).values(user_id=user_id, preferences=preferences)
    async with db.begin() as conn:
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[UserPreferences.user_id],
                set_={"preferences": statement.excluded.preferences, "updated_at": sa.func.now()},
            )
        )
