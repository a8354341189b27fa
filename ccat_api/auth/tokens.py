"""API tokens: ``ccat_<prefix>_<secret>``; only a SHA-256 of the secret is stored.

The secret has 256 bits of entropy, so a fast hash is enough (no password stretching); the
public prefix finds the row and the digest is compared in constant time. A token belongs to
a user (a person or a service account) and may be narrowed to some of its owner's
permissions (scopes). At a secondary site tokens are read from the local replica, so
instruments keep authenticating while main is unreachable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ccat_api.auth.directory import Directory
from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.last_known import LastKnown
from ccat_api.auth.permissions import effective_permissions
from ccat_api.db.engines import PrimaryDatabase, ReadDatabase
from ccat_api.db.models import ApiToken, User
from ccat_api.errors import NotFound, Unauthorized, Unprocessable

TOKEN_SCHEME = "ccat"  # noqa: S105 - the public scheme tag, not a secret
PREFIX_BYTES = 6
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str] | None
    expires_at: datetime | None
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    scheme, sep, rest = token.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or not sep or not sep2 or not prefix or not secret:
        raise Unauthorized("malformed API token: expected ccat_<prefix>_<secret>")
    return prefix, secret


async def issue_token(
    db: PrimaryDatabase,
    *,
    user_id: int,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new token for ``user_id``; its scopes must be permissions the owner's role has."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    async with db.begin() as conn:
        role = await conn.scalar(sa.select(User.role).where(User.id == user_id))
        if role is None:
            raise NotFound(f"user {user_id} not found")
        if scopes is not None:
            granted = {
                r[0]
                for r in await conn.execute(
                    sa.text("SELECT permission FROM role_permissions WHERE role = :role"),
                    {"role": role},
                )
            }
            beyond = sorted(set(scopes) - granted)
            if beyond:
                raise Unprocessable(
                    f"scopes: {', '.join(beyond)} not granted to role {role!r}", field="scopes"
                )
        token_id = await conn.scalar(
            sa.insert(ApiToken)
            .values(
                user_id=user_id,
                name=name,
                prefix=prefix,
                secret_hash=hash_secret(secret),
                scopes=sorted(set(scopes)) if scopes is not None else None,
                expires_at=expires_at,
            )
            .returning(ApiToken.id)
        )
    assert token_id is not None
    return IssuedToken(
        token_id=int(token_id),
        user_id=user_id,
        name=name,
        prefix=prefix,
        scopes=sorted(set(scopes)) if scopes is not None else None,
        expires_at=expires_at,
        plaintext=f"{TOKEN_SCHEME}_{prefix}_{secret}",
    )


async def ensure_service_account(
    db: PrimaryDatabase, login: str, role: str, *, name: str = ""
) -> int:
    """The id of service account ``login``, created with ``role`` if it does not exist."""
    async with db.begin() as conn:
        known_role = await conn.scalar(sa.text("SELECT 1 FROM roles WHERE name = :r"), {"r": role})
        if known_role is None:
            raise Unprocessable(f"role: no role named {role!r}", field="role")
        user_id = await conn.scalar(
            sa.text(
                "INSERT INTO users (login, name, role) VALUES (:login, :name, :role)"
                " ON CONFLICT (login) DO UPDATE SET login = EXCLUDED.login RETURNING id"
            ),
            {"login": login, "name": name or login, "role": role},
        )
    assert user_id is not None
    return int(user_id)


async def issue_service_token(
    db: PrimaryDatabase, login: str, role: str, *, scopes: list[str] | None = None
) -> IssuedToken:
    """A token for service account ``login`` (created with ``role`` when missing)."""
    user_id = await ensure_service_account(db, login, role)
    return await issue_token(db, user_id=user_id, name=login, scopes=scopes)


async def revoke_token(db: PrimaryDatabase, token_id: int, *, owner_id: int | None = None) -> bool:
    """Revoke a token (only the owner's, when ``owner_id`` is given)."""
    condition = [ApiToken.id == token_id, ApiToken.revoked_at.is_(None)]
    if owner_id is not None:
        condition.append(ApiToken.user_id == owner_id)
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(ApiToken).where(*condition).values(revoked_at=sa.func.now())
        )
    return bool(result.rowcount)


async def revoke_token_by_prefix(db: PrimaryDatabase, prefix: str) -> bool:
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(ApiToken)
            .where(ApiToken.prefix == prefix, ApiToken.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
    return bool(result.rowcount)


TOKEN_LISTING = (
    ApiToken.id,
    ApiToken.user_id,
    ApiToken.name,
    ApiToken.prefix,
    ApiToken.scopes,
    ApiToken.created_at,
    ApiToken.expires_at,
    ApiToken.revoked_at,
    ApiToken.last_used_at,
)


async def list_tokens(db: ReadDatabase | PrimaryDatabase, user_id: int | None) -> list[Any]:
    """Tokens without their secrets (only digests are stored anyway)."""
    query = sa.select(*TOKEN_LISTING).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    async with db.connect() as conn:
        return list(await conn.execute(query))


@dataclass(frozen=True, slots=True)
class _TokenRow:
    token_id: int
    user_id: int
    scopes: tuple[str, ...] | None
    expires_at: datetime | None


class TokenAuthenticator:
    """Presented token -> Identity. Only a verified token is cached, keyed by the token
    itself (it is in this process's memory anyway), so a cache hit costs no hashing."""

    def __init__(self, db: ReadDatabase, directory: Directory, *, cache_ttl_s: float) -> None:
        self._db = db
        self._directory = directory
        self._verified: LastKnown[str, _TokenRow] = LastKnown("API token", ttl_s=cache_ttl_s)

    async def authenticate(self, token: str) -> Identity:
        found = await self._verified.get(token, lambda: self._load(token))
        assert found is not None  # _load refuses rather than answering None
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise Unauthorized("API token expired")
        user = await self._directory.user(found.user_id)
        if user is None or not user.active:
            raise Unauthorized("the token's account is disabled")
        role_permissions = await self._directory.role_permissions(user.role)
        return Identity(
            user_id=user.id,
            login=user.login,
            role=user.role,
            permissions=effective_permissions(
                role_permissions, list(found.scopes) if found.scopes is not None else None
            ),
            via=Via.TOKEN,
            token_id=found.token_id,
            scopes=found.scopes,
        )

    async def _load(self, token: str) -> _TokenRow:
        prefix, secret = split_token(token)
        digest = hash_secret(secret)
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(ApiToken).where(ApiToken.prefix == prefix))
            ).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            raise Unauthorized("unknown API token")
        if row.revoked_at is not None:
            raise Unauthorized("API token revoked")
        return _TokenRow(
            token_id=row.id,
            user_id=row.user_id,
            scopes=tuple(row.scopes) if row.scopes is not None else None,
            expires_at=row.expires_at,
        )
