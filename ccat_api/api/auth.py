"""Logging in with GitHub, sessions, and who am I.

The callback never puts a token in a URL: it sets the refresh token as an HttpOnly cookie
(path /auth) and redirects; ``POST /auth/refresh`` turns it into a short-lived access token,
sent as ``Authorization: Bearer`` like an API token. Logging in and refreshing write to main.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from ccat_api.api import examples
from ccat_api.api.deps import PUBLIC, Authenticated, RuntimeDep
from ccat_api.api.responses import documented, errors
from ccat_api.api.routing import CheckedRoute
from ccat_api.auth.identity import Via
from ccat_api.auth.sessions import SessionTokens, end_session, refresh_session, start_session
from ccat_api.auth.users import upsert_github_user
from ccat_api.config import Settings
from ccat_api.errors import BadRequest, Forbidden, Unauthorized
from ccat_api.schemas.inputs import Strict
from ccat_api.schemas.inputs import examples as with_examples

router = APIRouter(route_class=CheckedRoute, prefix="/auth", tags=["auth"])

REFRESH_COOKIE = "ccat_refresh"
LOCATION_HEADER = {"Location": {"description": "Where to go next", "schema": {"type": "string"}}}


class RefreshRequest(Strict):
    model_config = with_examples({"refresh_token": "ccatr_..."}, {})

    refresh_token: str | None = Field(
        default=None, description="Omit to use the HttpOnly cookie set at login."
    )


class SessionRead(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type name
    expires_in: int
    refresh_token: str | None = Field(
        default=None, description="The next refresh token, when the request sent one in its body"
    )


class MeRead(BaseModel):
    user_id: int
    login: str
    role: str
    permissions: list[str]
    authenticated_with: str
    token_scopes: list[str] | None


@router.get(
    "/github/login",
    dependencies=[PUBLIC],
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"headers": LOCATION_HEADER}, **errors(503)},
    summary="Start logging in with GitHub (redirects to GitHub)",
)
async def github_login(request: Request, runtime: RuntimeDep) -> Response:
    return await runtime.github.redirect(request)


@router.get(
    "/github/callback",
    dependencies=[PUBLIC],
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"headers": LOCATION_HEADER}, **errors(400, 401, 403, 503)},
    summary="GitHub sends the browser back here; sets the session cookie and redirects",
)
async def github_callback(request: Request, runtime: RuntimeDep) -> Response:
    account = await runtime.github.account(request)
    role = runtime.github.role_for(account)
    user_id, active = await upsert_github_user(runtime.main_db, account, role)
    if not active:
        raise Forbidden(f"the account {account.login!r} is disabled here")
    tokens = await start_session(
        runtime.main_db,
        runtime.signer,
        user_id,
        refresh_ttl_s=runtime.settings.refresh_token_ttl_s,
    )
    response = RedirectResponse(
        _under_prefix(runtime.settings, runtime.settings.post_login_redirect), status_code=303
    )
    _set_refresh_cookie(response, tokens, runtime.settings)
    return response


@router.post(
    "/refresh",
    dependencies=[PUBLIC],
    response_model=SessionRead,
    responses=documented(examples.SESSION, 401, 422, 503),
    summary="A new access token for a refresh token (from the cookie or the body)",
)
async def refresh(
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> Response:
    presented = body.refresh_token if body is not None else None
    from_body = presented is not None
    presented = presented or request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise Unauthorized("no refresh token: log in at /auth/github/login")
    tokens = await refresh_session(runtime.main_db, runtime.signer, presented)
    answer = SessionRead(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in_s,
        refresh_token=tokens.refresh_token if from_body else None,
    )
    response = JSONResponse(answer.model_dump(exclude_none=True))
    if not from_body:
        _set_refresh_cookie(response, tokens, runtime.settings)
    return response


@router.post(
    "/logout",
    status_code=204,
    responses=errors(400, 401, 503),
    summary="End this session everywhere (once replicated to each site)",
)
async def logout(identity: Authenticated, runtime: RuntimeDep) -> Response:
    if identity.via is not Via.SESSION or identity.session_id is None:
        raise BadRequest("logout ends sessions; API tokens are revoked at DELETE /tokens/{id}")
    await end_session(runtime.main_db, identity.session_id)
    runtime.directory.forget_session(identity.session_id)
    response = Response(status_code=204)
    response.delete_cookie(REFRESH_COOKIE, path=_under_prefix(runtime.settings, "/auth"))
    return response


@router.get(
    "/me",
    response_model=MeRead,
    responses=documented(examples.ME, 401, 503),
    summary="Who this token is",
)
async def me(identity: Authenticated) -> MeRead:
    return MeRead(
        user_id=identity.user_id,
        login=identity.login,
        role=identity.role,
        permissions=sorted(identity.permissions),
        authenticated_with=identity.via.value,
        token_scopes=list(identity.scopes) if identity.scopes is not None else None,
    )


def _under_prefix(settings: Settings, path: str) -> str:
    """A path of this gateway as the browser sees it: under the reverse proxy's prefix
    (``root_path``) when it is one of ours (starts with "/"), else as configured."""
    return settings.root_path + path if path.startswith("/") else path


def _set_refresh_cookie(response: Response, tokens: SessionTokens, settings: Settings) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=settings.refresh_token_ttl_s,
        path=_under_prefix(settings, "/auth"),
        httponly=True,
        secure=settings.public_url.startswith("https://"),
        samesite="lax",
    )
