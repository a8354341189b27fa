"""Dependencies, as ``Annotated`` aliases so handlers read as typed parameters.

Every dependency is ``async def`` (FastAPI runs plain ``def`` ones in a thread pool, a thread
hand-off per request), and the write path resolves a single one: authentication, the
permission check, the gateway's admission (buffer capacity, the token's write quota) and the
Idempotency-Key claim happen in ``get_write_context``. What a write does after that is the
gateway's (``buffering/gateway.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from ccat_api.auth.identity import Identity, Via
from ccat_api.auth.permissions import Permission
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.idempotency import MAX_KEY_LENGTH
from ccat_api.buffering.ledger import TransactionLedger
from ccat_api.buffering.reads import MergedReader
from ccat_api.domain.context import WriteContext
from ccat_api.errors import BadRequest, Forbidden, NotFound, Unauthorized
from ccat_api.runtime import Runtime


def runtime_of(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def identify(request: Request) -> Identity:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return await runtime_of(request).authenticator.identify(token.strip())


# Declares the scheme in the OpenAPI document (so /docs can send a token and generated
# clients know every protected route wants one); identify() reads the header itself.
BEARER = HTTPBearer(
    auto_error=False,
    description="An API token (`ccat_<prefix>_<secret>`) or a session access token from"
    " `POST /auth/refresh`",
)
BearerDeclared = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


class Authorize:
    """A route's declared requirement: a permission, or (None) any authenticated identity.
    Every route depends on one of these or on ``public``; a test walks the route table."""

    def __init__(self, permission: Permission | None) -> None:
        self.permission = permission

    async def __call__(self, request: Request, _: BearerDeclared) -> Identity:
        identity = await identify(request)
        needed = self.permission
        if needed is not None and not identity.allows(needed):
            if identity.scopes is not None and needed not in identity.scopes:
                raise Forbidden(
                    f"this token is limited to scopes {', '.join(identity.scopes) or '(none)'};"
                    f" it needs {needed.value}"
                )
            raise Forbidden(f"role {identity.role!r} may not do this: it needs {needed.value}")
        return identity


def account_id(identity: Identity) -> int:
    """The identity's user row; the development identity has none."""
    if identity.via is Via.DEVELOPMENT:
        raise BadRequest("the development token has no account; use a real token for this")
    return identity.user_id


async def public() -> None:
    """Declares a route open to anyone (health, the login flow)."""


PUBLIC = Depends(public)

Authenticated = Annotated[Identity, Depends(Authorize(None))]
ReadAccess = Annotated[Identity, Depends(Authorize(Permission.READ_OBSERVATIONS))]
# Named: a critical write's fast path (api/critical.py) calls the same instance.
authorize_write = Authorize(Permission.WRITE_OBSERVATIONS)
WriteAccess = Annotated[Identity, Depends(authorize_write)]
BufferReadAccess = Annotated[Identity, Depends(Authorize(Permission.READ_BUFFER))]
BufferOperateAccess = Annotated[Identity, Depends(Authorize(Permission.OPERATE_BUFFER))]
AccountAccess = Annotated[Identity, Depends(Authorize(Permission.MANAGE_ACCOUNT))]
UsersAccess = Annotated[Identity, Depends(Authorize(Permission.MANAGE_USERS))]
TokensAccess = Annotated[Identity, Depends(Authorize(Permission.MANAGE_TOKENS))]
StagingAccess = Annotated[Identity, Depends(Authorize(Permission.MANAGE_STAGING))]


async def get_reader(request: Request) -> MergedReader:
    return runtime_of(request).reader


ReaderDep = Annotated[MergedReader, Depends(get_reader)]


async def get_ledger(request: Request, _: BufferReadAccess) -> TransactionLedger:
    """The buffer's ledger, after the caller is known to be allowed to see the buffer: a site
    without one answers 404, and whether a route exists is not for strangers to learn."""
    ledger = runtime_of(request).ledger
    if ledger is None:
        raise NotFound("this site applies writes directly; it keeps no buffer")
    return ledger


LedgerDep = Annotated[TransactionLedger, Depends(get_ledger)]


# Documented on every write route (see WRITE_ROUTE); read straight from the headers, since a
# declared Header parameter costs a pass of FastAPI's parameter machinery per request.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        # What str.isprintable() takes of the Latin-1 a header can carry (a test checks).
        "pattern": r"^[^\x00-\x1f\x7f-\xa0\xad]+$",
    },
    "description": "Retry-safe key: the same key and body return the first answer and write"
    " nothing new; the same key with another body is a 422. Scoped per token.",
}
WRITE_ROUTE: dict[str, Any] = {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}


async def get_write_context(request: Request, identity: WriteAccess) -> WriteContext:
    """Who writes and, for a request with an Idempotency-Key, its claim (a retried one is
    answered here with its first answer: see WriteGateway.claim). A write the site should
    not take now is refused first (WriteGateway.admit: 503 near capacity, 429 over quota)."""
    runtime = runtime_of(request)
    await runtime.gateway.admit(identity.principal_key)
    claim = None
    key = request.headers.get("idempotency-key")
    if key is not None:
        claim = await runtime.gateway.claim(
            identity.principal_key,
            key,
            method=request.method,
            path=request.url.path,
            body=await request.body(),
        )
    return WriteContext(
        site_name=runtime.settings.site_name,
        principal=Principal(token_id=identity.token_id, name=identity.login, role=identity.role),
        reader=runtime.reader,
        references=runtime.references,
        gateway=runtime.gateway,
        claim=claim,
    )


WriteContextDep = Annotated[WriteContext, Depends(get_write_context)]
