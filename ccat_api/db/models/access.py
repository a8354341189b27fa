"""People, machines and what they may do: roles, permissions, users, sessions, tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Text
from sqlalchemy import true as sa_true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from ccat_api.db.models.base import Base, utc_now_column


class Role(StrEnum):
    """The roles a fresh database knows (seeded by a migration); more can be added there."""

    ADMIN = "admin"
    OPERATOR = "operator"
    OBSERVER = "observer"
    VIEWER = "viewer"
    SERVICE = "service"


class RoleRecord(Base):
    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(default="", server_default="")


class PermissionRecord(Base):
    __tablename__ = "permissions"
    name: Mapped[str] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(default="", server_default="")


class RolePermission(Base):
    __tablename__ = "role_permissions"
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"), primary_key=True)
    permission: Mapped[str] = mapped_column(ForeignKey("permissions.name"), primary_key=True)


class User(Base):
    """A person (logged in with GitHub) or a service account (instruments, scripts)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(unique=True)
    github_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(default="", server_default="")
    email: Mapped[str | None]
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"))
    active: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    created_at: Mapped[datetime] = utc_now_column()
    updated_at: Mapped[datetime] = utc_now_column()
    last_login_at: Mapped[datetime | None]


class UserSession(Base):
    """A login: the refresh token's digest; access tokens are signed and carry its id."""

    __tablename__ = "user_sessions"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    refresh_hash: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[datetime] = utc_now_column()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class UserPreferences(Base):
    __tablename__ = "user_preferences"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    updated_at: Mapped[datetime] = utc_now_column()


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str]
    prefix: Mapped[str] = mapped_column(unique=True)
    secret_hash: Mapped[str]
    # Permissions this token is limited to, within its owner's role; NULL: all of them.
    scopes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = utc_now_column()
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
