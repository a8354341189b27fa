"""Dependencies, as ``Annotated`` aliases so handlers read as typed parameters.

Every dependency is ``async def`` (FastAPI runs plain ``def`` ones in a thread pool, a thread
hand-off per request), and the write path resolves a single one: authentication, the
permission check and the Idempotency-Key lookup happen in ``get_write_context``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response

from ccat_api.auth.permissions import Permission, role_allows
from ccat_api.auth.tokens import AuthenticatedToken
from ccat_api.buffering.buffer import Answer, IdempotencyClaim
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.ledger import TransactionLedger
from ccat_api.buffering.reads import MergedReader
from ccat_api.domain.context import PreparedWrite, WriteContext
from ccat_api.errors import BadRequest, Forbidden, NotFound, Unauthorized
from ccat_api.runtime import Runtime

MAX_IDEMPOTENCY_KEY_LENGTH = 200


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def authorize(request: Request, permission: Permission) -> AuthenticatedToken:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    found = await runtime_of(request).authenticator.authenticate(token.strip())
    if not role_allows(found.role, permission):
        raise Forbidden(f"role {found.role!r} may not do this: it needs {permission.value}")
    return found


class Authorize:
    """A route's permission requirement; the token's role must grant it."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> AuthenticatedToken:
        return await authorize(request, self.permission)


ReadAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.READ_OBSERVATIONS))]
BufferReadAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.READ_BUFFER))]
BufferOperateAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.OPERATE_BUFFER))]


async def get_reader(request: Request) -> MergedReader:
    return runtime_of(request).reader


ReaderDep = Annotated[MergedReader, Depends(get_reader)]


async def get_ledger(request: Request) -> TransactionLedger:
    ledger = runtime_of(request).ledger
    if ledger is None:
        raise NotFound("this site applies writes directly; it keeps no buffer")
    return ledger


LedgerDep = Annotated[TransactionLedger, Depends(get_ledger)]


class ReplayedAnswer(Exception):
    """Control flow, not an error: a retried request gets the first answer, verbatim."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replayed idempotent answer")
        self.answer = answer


# Documented on every write route (see WRITE_ROUTE); read straight from the headers, since a
# declared Header parameter costs a pass of FastAPI's parameter machinery per request.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
    "description": "Retry-safe key: the same key and body return the first answer and write"
    " nothing new; the same key with another body is a 422. Scoped per token.",
}
WRITE_ROUTE: dict[str, Any] = {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}


async def get_write_context(request: Request) -> WriteContext:
    """Who writes, and, for a retried request, its first answer (raised as ReplayedAnswer):
    a retry validated against today's state would be refused for what its first attempt
    changed (a finished unit, a taken path)."""
    runtime = runtime_of(request)
    token = await authorize(request, Permission.WRITE_OBSERVATIONS)
    claim = None
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None:
        claim = await _claim(request, runtime, token, idempotency_key)
        prior = await runtime.site.prior_answer(claim)
        if prior is not None:
            raise ReplayedAnswer(prior)
    return WriteContext(
        site_name=runtime.settings.site_name,
        principal=Principal(token_id=token.token_id, name=token.name, role=token.role),
        reader=runtime.reader,
        references=runtime.references,
        site=runtime.site,
        claim=claim,
    )


WriteContextDep = Annotated[WriteContext, Depends(get_write_context)]


async def _claim(
    request: Request, runtime: Runtime, token: AuthenticatedToken, key: str
) -> IdempotencyClaim:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )
    raw = await request.body()
    try:
        # The same parser FastAPI uses, then a canonical form: key order and spacing of a
        # retried body do not matter.
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical
    ).hexdigest()
    return IdempotencyClaim(principal=token.principal_key, key=key, request_hash=digest)


async def submit_write(ctx: WriteContext, prepared: PreparedWrite, *, status_code: int) -> Response:
    """Hand the prepared write to this site and answer with what the site says (for a
    concurrent duplicate of an Idempotency-Key: the first answer, byte for byte)."""
    body = {
        "id": str(prepared.id),
        "tx_id": prepared.envelope.tx_id,
        "status": ctx.site.status,
        "ids": [str(i) for i in prepared.created],
    }
    answer = await ctx.site.submit(prepared.envelope, Answer(status_code, body), ctx.claim)
    return Response(
        orjson.dumps(answer.body), status_code=answer.status_code, media_type="application/json"
    )
