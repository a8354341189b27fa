"""WebSocket tickets: how a browser opens a monitor without a long-lived secret in a URL.

Browsers cannot set an Authorization header on a WebSocket, and a URL ends up in logs and
history. So a client with a bearer token first asks ``POST /api/ws/tickets`` for a ticket: a
signed, single-use identity that expires in ``ws_ticket_ttl_s`` (30 s), valid only at the site
that issued it (sites share the signing secret but not the record of used tickets). Use is
recorded in Redis when the site has one (so no worker accepts a ticket twice), else in this
process.
On redemption the account, and the API token or the session it was issued to, are checked
again, from the site's database with the same short cache as bearer tokens: a ticket
outlives neither a revocation nor a logout by more than that cache.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from cachetools import TTLCache
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from redis.asyncio import Redis

from ccat_api.auth.directory import Directory
from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.last_known import LastKnown
from ccat_api.buffering.keys import SiteKeys
from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import ApiToken
from ccat_api.errors import Unauthorized

SALT = "ccat-ws-ticket"


class TicketIssuer:
    def __init__(
        self,
        secret: str,
        site: str,
        directory: Directory,
        redis: Redis | None,
        keys: SiteKeys,
        *,
        ttl_s: int,
        db: ReadDatabase,
        token_cache_ttl_s: float,
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self._site = site
        self._directory = directory
        self._db = db
        # token id -> why it no longer authenticates ("" while it does), when it expires
        self._tokens: LastKnown[int, tuple[str, datetime | None]] = LastKnown(
            "API token standing", ttl_s=token_cache_ttl_s
        )
        self._redis = redis
        self._keys = keys
        self.ttl_s = ttl_s
        self._used_here: TTLCache[str, bool] = TTLCache(maxsize=100_000, ttl=ttl_s + 5)

    def issue(self, identity: Identity) -> str:
        return self._serializer.dumps(
            {
                "jti": secrets.token_urlsafe(12),
                "site": self._site,
                "uid": identity.user_id,
                "login": identity.login,
                "role": identity.role,
                "perms": sorted(identity.permissions),
                "via": identity.via.value,
                "tid": identity.token_id,
                "sid": identity.session_id,
                "scopes": list(identity.scopes) if identity.scopes is not None else None,
                "exp": identity.expires_at,
                "iat": time.time(),
            }
        )

    async def redeem(self, ticket: str) -> Identity:
        try:
            claims = self._serializer.loads(ticket, max_age=self.ttl_s)
        except SignatureExpired:
            raise Unauthorized("the WebSocket ticket has expired; ask for a new one") from None
        except BadSignature:
            raise Unauthorized("the WebSocket ticket is not valid") from None
        if claims.get("site") != self._site:
            raise Unauthorized(
                f"the WebSocket ticket was issued by site {claims.get('site')!r}, not this one"
                f" ({self._site}); ask this site for a ticket"
            )
        if not await self._first_use(str(claims["jti"])):
            raise Unauthorized("the WebSocket ticket was already used; ask for a new one")
        identity = Identity(
            user_id=int(claims["uid"]),
            login=str(claims["login"]),
            role=str(claims["role"]),
            permissions=frozenset(claims["perms"]),
            via=Via(claims["via"]),
            token_id=claims["tid"],
            session_id=claims["sid"],
            scopes=tuple(claims["scopes"]) if claims["scopes"] is not None else None,
            expires_at=claims.get("exp"),
        )
        await self._still_allowed(identity)
        return identity

    async def _first_use(self, jti: str) -> bool:
        if self._redis is not None:
            return bool(await self._redis.set(self._keys.ws_ticket(jti), 1, nx=True, ex=self.ttl_s))
        if jti in self._used_here:
            return False
        self._used_here[jti] = True
        return True

    async def _still_allowed(self, identity: Identity) -> None:
        if identity.via is Via.DEVELOPMENT:
            return
        user = await self._directory.user(identity.user_id)
        if user is None or not user.active:
            raise Unauthorized("the account behind this ticket is disabled or gone")
        if identity.session_id is not None and not await self._directory.session_open(
            identity.session_id
        ):
            raise Unauthorized("the session behind this ticket has ended")
        if identity.token_id is not None:
            refusal = await self._token_refusal(identity.token_id, identity.user_id)
            if refusal:
                raise Unauthorized(f"the API token behind this ticket {refusal}")

    async def _token_refusal(self, token_id: int, user_id: int) -> str:
        standing = await self._tokens.get(token_id, lambda: self._load_token(token_id, user_id))
        assert standing is not None  # _load_token answers or refuses
        refusal, expires_at = standing
        if not refusal and expires_at is not None and expires_at <= datetime.now(UTC):
            return "has expired"
        return refusal

    async def _load_token(self, token_id: int, user_id: int) -> tuple[str, datetime | None]:
        """Why the token no longer authenticates ("" while it does), and when it expires."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(ApiToken.user_id, ApiToken.revoked_at, ApiToken.expires_at).where(
                        ApiToken.id == token_id
                    )
                )
            ).one_or_none()
        if row is None or row.user_id != user_id:
            return "is gone", None
        if row.revoked_at is not None:
            return "was revoked", None
        return "", row.expires_at
