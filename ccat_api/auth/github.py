"""Logging people in with GitHub (authlib's Starlette OAuth client).

The login redirect stores a random state in a short-lived signed cookie; the callback
refuses any other state (CSRF), exchanges the code, reads the user, their membership of the
configured organisation and their teams there, and maps teams to a role
(``github_team_roles``; the highest role wins; ``github_default_role`` for members without
a mapped team, if set). Outsiders are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App
from starlette.requests import Request
from starlette.responses import Response

from ccat_api.config import Settings
from ccat_api.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized

# Which role wins when a person's teams map to several.
ROLE_RANK = {"admin": 5, "operator": 4, "observer": 3, "service": 2, "viewer": 1}


@dataclass(frozen=True, slots=True)
class GitHubAccount:
    id: int
    login: str
    name: str
    email: str | None
    member: bool
    teams: tuple[str, ...]


class GitHubLogin:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        oauth = OAuth()
        oauth.register(
            name="github",
            client_id=settings.github_client_id,
            client_secret=settings.github_client_secret,
            authorize_url=f"{settings.github_oauth_url.rstrip('/')}/login/oauth/authorize",
            access_token_url=f"{settings.github_oauth_url.rstrip('/')}/login/oauth/access_token",
            api_base_url=settings.github_api_url.rstrip("/") + "/",
            # GitHub documents the client secret as a form field of the token request.
            client_kwargs={
                "scope": "read:user read:org",
                "token_endpoint_auth_method": "client_secret_post",
            },
        )
        client = oauth.create_client("github")
        assert isinstance(client, StarletteOAuth2App)
        self._client = client

    @property
    def configured(self) -> bool:
        return bool(self._settings.github_client_id and self._settings.github_org_name)

    async def redirect(self, request: Request) -> Response:
        self._require_configured()
        callback = self._settings.public_url.rstrip("/") + "/auth/github/callback"
        response: Response = await self._client.authorize_redirect(request, callback)
        return response

    async def account(self, request: Request) -> GitHubAccount:
        """The GitHub account behind a callback; refuses a wrong state or a denied consent."""
        self._require_configured()
        if request.query_params.get("error"):
            raise Unauthorized(
                f"GitHub login was not granted: {request.query_params['error']}"
                f" {request.query_params.get('error_description', '')}".rstrip()
            )
        try:
            token = await self._client.authorize_access_token(request)
            org = self._settings.github_org_name
            user = await self._get_json("user", token)
            login = str(user["login"])
            membership = await self._client.get(f"orgs/{org}/members/{login}", token=token)
            teams = await self._get_json("user/teams", token, params={"per_page": 100})
        except OAuthError as exc:
            if exc.error == "mismatching_state":
                raise BadRequest(
                    "state: the login's state does not match; start again at /auth/github/login",
                    field="state",
                ) from exc
            raise Unauthorized(f"GitHub login failed: {exc.error}") from exc
        except (httpx2.HTTPError, OSError) as exc:
            raise ServiceUnavailable(f"GitHub cannot be reached now: {exc}") from exc
        return GitHubAccount(
            id=int(user["id"]),
            login=login,
            name=str(user.get("name") or login),
            email=user.get("email"),
            member=membership.status_code == 204,
            teams=tuple(
                str(t["slug"])
                for t in teams
                if str(t.get("organization", {}).get("login", "")).lower() == org.lower()
            ),
        )

    def role_for(self, account: GitHubAccount) -> str:
        org = self._settings.github_org_name
        if not account.member:
            raise Forbidden(f"GitHub user {account.login!r} is not a member of {org!r}")
        mapped = [
            self._settings.github_team_roles[t]
            for t in account.teams
            if t in self._settings.github_team_roles
        ]
        if mapped:
            return max(mapped, key=lambda role: ROLE_RANK.get(role, 0))
        if self._settings.github_default_role:
            return self._settings.github_default_role
        raise Forbidden(f"none of {account.login!r}'s teams in {org!r} grants a role here")

    async def _get_json(self, path: str, token: Any, params: dict[str, Any] | None = None) -> Any:
        response = await self._client.get(path, token=token, params=params)
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"GitHub answered {response.status_code} for {path}; try logging in again"
            )
        return response.json()

    def _require_configured(self) -> None:
        if not self.configured:
            raise ServiceUnavailable(
                "GitHub login is not configured at this site (github_client_id, github_org_name)"
            )
