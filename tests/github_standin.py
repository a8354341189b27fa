"""A stand-in for GitHub's OAuth and REST endpoints, served over real HTTP by the tests.

It implements what the gateway uses: the authorize redirect (consent granted or denied), the
code-for-token exchange (checking the client secret and the redirect), ``/user``,
``/orgs/{org}/members/{login}`` and ``/user/teams``. Tests set who logs in and what they
belong to through ``account``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "Iv1.standin"
CLIENT_SECRET = "standin-secret-" + "x" * 24


@dataclass
class Account:
    id: int = 4242
    login: str = "astro-anna"
    name: str = "Anna Astro"
    email: str | None = "anna@example.org"
    member: bool = True
    teams: list[str] = field(default_factory=list)
    deny_consent: bool = False


@dataclass
class GitHubStandIn:
    org: str = "ccatobs"
    account: Account = field(default_factory=Account)
    codes: dict[str, str] = field(default_factory=dict)  # code -> redirect_uri
    tokens: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
                Route("/api/user", self.user),
                Route("/api/orgs/{org}/members/{login}", self.membership),
                Route("/api/user/teams", self.teams),
            ]
        )

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "unknown client"}, status_code=400)
        back = {"state": params.get("state", "")}
        if self.account.deny_consent:
            back |= {"error": "access_denied", "error_description": "The user denied access"}
        else:
            code = secrets.token_hex(8)
            self.codes[code] = params["redirect_uri"]
            back["code"] = code
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(back)}", status_code=302)

    async def access_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "incorrect_client_credentials"})
        code = str(form.get("code"))
        if self.codes.pop(code, None) != form.get("redirect_uri"):
            return JSONResponse({"error": "bad_verification_code"})
        token = "gho_" + secrets.token_hex(16)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": "read:org"})

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() in {"bearer", "token"} and token in self.tokens

    async def user(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        a = self.account
        return JSONResponse({"id": a.id, "login": a.login, "name": a.name, "email": a.email})

    async def membership(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        org, login = request.path_params["org"], request.path_params["login"]
        member = org == self.org and login == self.account.login and self.account.member
        return Response(status_code=204 if member else 404)

    async def teams(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            [{"slug": t, "organization": {"login": self.org}} for t in self.account.teams]
            + [{"slug": "elsewhere", "organization": {"login": "another-org"}}]
        )
