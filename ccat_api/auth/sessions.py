"""Sessions for people who logged in with GitHub: a short-lived signed access token and a
rotating refresh token.

The access token is a JWT (HS256, ``session_secret``) naming the user and the session; any
site verifies it offline and checks the user and the session against its local database, so
a logout or a disabled account reaches a site with replication. The refresh token is random,
stored only as a digest, and replaced on every use; refreshing writes to main.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from ccat_api.auth.directory import Directory
from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.tokens import hash_secret
from ccat_api.db.engines import PrimaryDatabase
from ccat_api.db.models import UserSession
from ccat_api.errors import Unauthorized

ISSUER = "ccat_api"
REFRESH_PREFIX = "ccatr_"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class SessionTokens:
    access_token: str
    expires_in_s: int
    refresh_token: str
    session_id: str


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: float


class SessionSigner:
    def __init__(self, secret: str, *, access_ttl_s: int) -> None:
        self._key = OctKey.import_key(secret.encode())
        self.access_ttl_s = access_ttl_s

    def access_token(self, user_id: int, session_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": session_id,
            "iat": now,
            "exp": now + self.access_ttl_s,
            "typ": "access",
        }
        return jwt.encode({"alg": ALGORITHM}, claims, self._key)

    def verify(self, token: str) -> AccessClaims:
        """Who a valid, unexpired access token names, and until when it is valid."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError) as exc:
            raise Unauthorized("invalid session token") from exc
        if claims.get("iss") != ISSUER or claims.get("typ") != "access":
            raise Unauthorized("invalid session token")
        expires_at = int(claims.get("exp", 0))
        if expires_at <= time.time():
            raise Unauthorized("session token expired; refresh it at /auth/refresh")
        return AccessClaims(int(claims["sub"]), str(claims["sid"]), float(expires_at))


class SessionAuthenticator:
    def __init__(self, signer: SessionSigner, directory: Directory) -> None:
        self._signer = signer
        self._directory = directory

    async def authenticate(self, token: str) -> Identity:
        claims = self._signer.verify(token)
        user = await self._directory.user(claims.user_id)
        if user is None or not user.active:
            raise Unauthorized("the session's account is disabled")
        if not await self._directory.session_open(claims.session_id):
            raise Unauthorized("session ended; log in again")
        return Identity(
            user_id=user.id,
            login=user.login,
            role=user.role,
            permissions=await self._directory.role_permissions(user.role),
            via=Via.SESSION,
            session_id=claims.session_id,
            expires_at=claims.expires_at,
        )


async def start_session(
    db: PrimaryDatabase, signer: SessionSigner, user_id: int, *, refresh_ttl_s: int
) -> SessionTokens:
    session_id = str(uuid.uuid4())
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(UserSession).values(
                id=session_id,
                user_id=user_id,
                refresh_hash=hash_secret(refresh),
                expires_at=datetime.now(UTC) + timedelta(seconds=refresh_ttl_s),
            )
        )
    return SessionTokens(
        signer.access_token(user_id, session_id), signer.access_ttl_s, refresh, session_id
    )


async def refresh_session(
    db: PrimaryDatabase, signer: SessionSigner, refresh_token: str
) -> SessionTokens:
    """A new access token and a new refresh token; the presented one stops working."""
    if not refresh_token.startswith(REFRESH_PREFIX):
        raise Unauthorized("malformed refresh token")
    renewed = REFRESH_PREFIX + secrets.token_urlsafe(32)
    async with db.begin() as conn:
        row = (
            await conn.execute(
                sa.update(UserSession)
                .where(
                    UserSession.refresh_hash == hash_secret(refresh_token),
                    UserSession.revoked_at.is_(None),
                    UserSession.expires_at > sa.func.now(),
                )
                .values(refresh_hash=hash_secret(renewed))
                .returning(UserSession.id, UserSession.user_id)
            )
        ).one_or_none()
    if row is None:
        raise Unauthorized("refresh token unknown, used already, expired or logged out")
    session_id = str(row.id)
    return SessionTokens(
        signer.access_token(row.user_id, session_id), signer.access_ttl_s, renewed, session_id
    )


async def end_session(db: PrimaryDatabase, session_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            sa.update(UserSession)
            .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
