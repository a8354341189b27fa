"""API tokens: ``ccat_<prefix>_<secret>``; only a SHA-256 of the secret is stored.

The secret has 256 bits of entropy, so a fast hash is enough (no password stretching); the
public prefix finds the row and the digest is compared in constant time. At a secondary
site tokens are read from the local replica, so instruments keep authenticating while main
is unreachable; a short in-process cache keeps the database off the hot path, which bounds
how long a revoked token keeps working at a site (cache TTL plus replication delay).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cachetools import TTLCache

from ccat_api.db.engines import PrimaryDatabase, ReadDatabase
from ccat_api.db.models import ApiToken, Role
from ccat_api.errors import Unauthorized

TOKEN_SCHEME = "ccat"  # noqa: S105 - the public scheme tag, not a secret
PREFIX_BYTES = 6
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuthenticatedToken:
    token_id: int
    name: str
    role: str
    expires_at: datetime | None

    @property
    def principal_key(self) -> str:
        """Stable per-token scope for idempotency keys."""
        return f"token-{self.token_id}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: int
    name: str
    role: str
    plaintext: str
    prefix: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    scheme, sep, rest = token.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or not sep or not sep2 or not prefix or not secret:
        raise Unauthorized("malformed API token: expected ccat_<prefix>_<secret>")
    return prefix, secret


async def issue_token(
    db: PrimaryDatabase, *, name: str, role: Role, expires_at: datetime | None = None
) -> IssuedToken:
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    async with db.begin() as conn:
        token_id = await conn.scalar(
            sa.insert(ApiToken)
            .values(
                name=name,
                prefix=prefix,
                secret_hash=hash_secret(secret),
                role=role.value,
                expires_at=expires_at,
            )
            .returning(ApiToken.id)
        )
    assert token_id is not None
    return IssuedToken(
        token_id=int(token_id),
        name=name,
        role=role.value,
        plaintext=f"{TOKEN_SCHEME}_{prefix}_{secret}",
        prefix=prefix,
    )


async def revoke_token(db: PrimaryDatabase, prefix: str) -> bool:
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(ApiToken)
            .where(ApiToken.prefix == prefix, ApiToken.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
    return bool(result.rowcount)


class TokenAuthenticator:
    def __init__(self, db: ReadDatabase, *, cache_ttl_s: float) -> None:
        self._db = db
        self._cache: TTLCache[str, AuthenticatedToken] | None = (
            TTLCache(maxsize=10_000, ttl=cache_ttl_s) if cache_ttl_s > 0 else None
        )

    async def authenticate(self, token: str) -> AuthenticatedToken:
        # Keyed by the presented token itself (it is in this process's memory anyway), so a
        # cached token costs no hashing; only a verified token is ever cached.
        found = self._cache.get(token) if self._cache is not None else None
        if found is None:
            prefix, secret = split_token(token)
            found = await self._load(prefix, hash_secret(secret))
            if self._cache is not None:
                self._cache[token] = found
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise Unauthorized("API token expired")
        return found

    async def _load(self, prefix: str, digest: str) -> AuthenticatedToken:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(ApiToken).where(ApiToken.prefix == prefix))
            ).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            raise Unauthorized("unknown API token")
        if row.revoked_at is not None:
            raise Unauthorized("API token revoked")
        return AuthenticatedToken(
            token_id=row.id, name=row.name, role=row.role, expires_at=row.expires_at
        )
