"""API tokens: one's own (create, list, revoke) and, for admins, everyone's.

A token's secret is in the creation answer only; listings show the public prefix. A new
token's scopes must lie within what its creator may do (a scoped token cannot mint a broader
one) and within its owner's role.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ccat_api.api import examples
from ccat_api.api.deps import AccountAccess, RuntimeDep, TokensAccess, account_id
from ccat_api.api.responses import documented, errors
from ccat_api.api.routing import CheckedRoute
from ccat_api.auth.identity import Identity
from ccat_api.auth.permissions import Permission
from ccat_api.auth.tokens import issue_token, list_tokens, revoke_token
from ccat_api.errors import NotFound, Unprocessable
from ccat_api.schemas.inputs import LAX, IdParam, Strict
from ccat_api.schemas.inputs import examples as with_examples

router = APIRouter(route_class=CheckedRoute, tags=["tokens"])


class TokenCreate(Strict):
    model_config = with_examples(
        {"name": "laptop", "scopes": ["read:observations"], "expires_in_days": 90}
    )

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    scopes: list[Annotated[Permission, LAX]] | None = Field(
        default=None, description="Limit the token to these permissions (default: all granted)"
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenRead(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIssued(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str] | None
    expires_at: datetime | None
    token: str = Field(description="The secret: shown this once, stored only as a digest")


def _scopes_for(identity: Identity, requested: list[Permission] | None) -> list[str] | None:
    """What a new token may carry: never more than the identity creating it."""
    if requested is None:
        return list(identity.scopes) if identity.scopes is not None else None
    beyond = sorted({p.value for p in requested} - identity.permissions)
    if beyond:
        raise Unprocessable(
            f"scopes: {', '.join(beyond)} exceed what this identity may do", field="scopes"
        )
    return [p.value for p in requested]


async def _issue(
    runtime: RuntimeDep, creator: Identity, user_id: int, body: TokenCreate
) -> TokenIssued:
    """A token for ``user_id``, scoped here so that no route can issue one beyond what its
    creator may do."""
    scopes = _scopes_for(creator, body.scopes)
    expires_at = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    issued = await issue_token(
        runtime.main_db, user_id=user_id, name=body.name, scopes=scopes, expires_at=expires_at
    )
    return TokenIssued(
        id=issued.token_id,
        user_id=issued.user_id,
        name=issued.name,
        prefix=issued.prefix,
        scopes=issued.scopes,
        expires_at=issued.expires_at,
        token=issued.plaintext,
    )


def _read(rows: list[Any]) -> list[TokenRead]:
    return [TokenRead.model_validate(r._mapping) for r in rows]


@router.get(
    "/tokens",
    response_model=list[TokenRead],
    # 400: the development token has no account, so no tokens of its own.
    responses=documented([examples.TOKEN], 400, 401, 403, 503),
    summary="My tokens",
)
async def my_tokens(identity: AccountAccess, runtime: RuntimeDep) -> list[TokenRead]:
    return _read(await list_tokens(runtime.read_db, account_id(identity)))


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenIssued,
    responses=documented(examples.TOKEN_ISSUED, 400, 401, 403, 422, 503, status=201),
    summary="Create a token for myself (the secret is shown once)",
)
async def create_my_token(
    body: TokenCreate, identity: AccountAccess, runtime: RuntimeDep
) -> TokenIssued:
    return await _issue(runtime, identity, account_id(identity), body)


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    responses=errors(401, 403, 404, 422, 503),
    summary="Revoke one of my tokens (any token, with manage:tokens)",
)
async def revoke(token_id: IdParam, identity: AccountAccess, runtime: RuntimeDep) -> None:
    owner = None if identity.allows(Permission.MANAGE_TOKENS) else account_id(identity)
    if not await revoke_token(runtime.main_db, token_id, owner_id=owner):
        raise NotFound(f"no active token {token_id} of yours")


@router.get(
    "/admin/tokens",
    response_model=list[TokenRead],
    responses=documented([examples.TOKEN], 401, 403, 422, 503),
    summary="Everyone's tokens, or one user's (admin)",
)
async def all_tokens(
    _: TokensAccess,
    runtime: RuntimeDep,
    user_id: Annotated[IdParam | None, Query()] = None,
) -> list[TokenRead]:
    return _read(await list_tokens(runtime.read_db, user_id))


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=TokenIssued,
    responses=documented(examples.TOKEN_ISSUED, 401, 403, 404, 422, 503, status=201),
    summary="Create a token for a user, e.g. an instrument's service account (admin)",
)
async def create_token_for(
    user_id: IdParam, body: TokenCreate, identity: TokensAccess, runtime: RuntimeDep
) -> TokenIssued:
    return await _issue(runtime, identity, user_id, body)
