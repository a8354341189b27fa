"""Bearer token -> Identity: API tokens (``ccat_...``), session tokens (JWT), and in
development mode only, the development token."""

from __future__ import annotations

import hmac

from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.permissions import Permission
from ccat_api.auth.sessions import SessionAuthenticator
from ccat_api.auth.tokens import TOKEN_SCHEME, TokenAuthenticator
from ccat_api.auth.usage import TokenUsage
from ccat_api.errors import Unauthorized

# Documented in the README; accepted only when the site runs with development = true.
DEV_TOKEN = "ccat-dev-token"  # noqa: S105 - a published development convenience, not a secret

DEV_IDENTITY = Identity(
    user_id=0,
    login="development",
    role="admin",
    permissions=frozenset(Permission),
    via=Via.DEVELOPMENT,
)


class Authenticator:
    def __init__(
        self,
        tokens: TokenAuthenticator,
        sessions: SessionAuthenticator,
        usage: TokenUsage,
        *,
        development: bool,
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self.usage = usage
        self._development = development

    async def identify(self, bearer: str) -> Identity:
        if hmac.compare_digest(bearer, DEV_TOKEN):
            if not self._development:
                raise Unauthorized("the development token is refused outside development mode")
            return DEV_IDENTITY
        if bearer.startswith(TOKEN_SCHEME + "_"):
            identity = await self._tokens.authenticate(bearer)
            assert identity.token_id is not None
            self.usage.seen(identity.token_id)
            return identity
        if bearer.count(".") == 2:
            return await self._sessions.authenticate(bearer)
        raise Unauthorized(
            "malformed bearer token: expected an API token (ccat_<prefix>_<secret>)"
            " or a session token from /auth/refresh"
        )
