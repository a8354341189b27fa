"""Who a request acts for, whichever way it authenticated (API token, session, development).

The identity carries its effective permissions (role permissions narrowed by the token's
scopes), decided once per request from data the site reads locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Via(StrEnum):
    TOKEN = "token"  # noqa: S105 - a kind of credential, not one
    SESSION = "session"
    DEVELOPMENT = "development"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    login: str
    role: str
    permissions: frozenset[str]
    via: Via
    token_id: int | None = None
    session_id: str | None = None
    scopes: tuple[str, ...] | None = None
    # Unix time the credential stops working, when it carries one (a session's access
    # token): monitors opened with it are closed by then.
    expires_at: float | None = None

    def allows(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def principal_key(self) -> str:
        """Idempotency keys are scoped per token, or per user for sessions."""
        return f"token-{self.token_id}" if self.token_id is not None else f"user-{self.user_id}"
