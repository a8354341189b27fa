"""Dependencies, as ``Annotated`` aliases so handlers read as typed parameters."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from ccat_api.auth.permissions import Permission, role_allows
from ccat_api.auth.tokens import AuthenticatedToken
from ccat_api.buffering.buffer import Answer, IdempotencyClaim
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.ledger import TransactionLedger
from ccat_api.buffering.reads import MergedReader
from ccat_api.domain.context import PreparedWrite, WriteContext
from ccat_api.domain.schemas import WriteAccepted
from ccat_api.errors import BadRequest, Forbidden, NotFound, Unauthorized
from ccat_api.runtime import Runtime

MAX_IDEMPOTENCY_KEY_LENGTH = 200

# Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread
# pool, a thread hand-off per dependency per request on the hot write path.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_token(request: Request, runtime: RuntimeDep) -> AuthenticatedToken:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return await runtime.authenticator.authenticate(token.strip())


TokenDep = Annotated[AuthenticatedToken, Depends(get_token)]


class Authorize:
    """A route's permission requirement; the token's role must grant it."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, token: TokenDep) -> AuthenticatedToken:
        if not role_allows(token.role, self.permission):
            raise Forbidden(
                f"role {token.role!r} may not do this: it needs {self.permission.value}"
            )
        return token


ReadAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.READ_OBSERVATIONS))]
WriteAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.WRITE_OBSERVATIONS))]
BufferReadAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.READ_BUFFER))]
BufferOperateAccess = Annotated[AuthenticatedToken, Depends(Authorize(Permission.OPERATE_BUFFER))]


async def get_reader(runtime: RuntimeDep) -> MergedReader:
    return runtime.reader


ReaderDep = Annotated[MergedReader, Depends(get_reader)]


async def get_ledger(runtime: RuntimeDep) -> TransactionLedger:
    if runtime.ledger is None:
        raise NotFound("this site applies writes directly; it keeps no buffer")
    return runtime.ledger


LedgerDep = Annotated[TransactionLedger, Depends(get_ledger)]


async def _idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Retry-safe key: the same key and body return the first answer and"
            " write nothing new.",
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if (
        not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        or not idempotency_key.isprintable()
    ):
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )
    return idempotency_key


class ReplayedAnswer(Exception):
    """Control flow, not an error: a retried request gets the first answer, verbatim."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replayed idempotent answer")
        self.answer = answer


async def _idempotency_claim(
    request: Request,
    runtime: RuntimeDep,
    token: WriteAccess,
    key: Annotated[str | None, Depends(_idempotency_key)],
) -> IdempotencyClaim | None:
    """Answer a retry before anything else: validating it against today's state would
    refuse what the first request changed (a finished unit, a taken path)."""
    if key is None:
        return None
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
    claim = IdempotencyClaim(principal=token.principal_key, key=key, request_hash=digest)
    prior = await runtime.site.prior_answer(claim)
    if prior is not None:
        raise ReplayedAnswer(prior)
    return claim


async def get_write_context(
    runtime: RuntimeDep,
    token: WriteAccess,
    claim: Annotated[IdempotencyClaim | None, Depends(_idempotency_claim)],
) -> WriteContext:
    return WriteContext(
        site_name=runtime.settings.site_name,
        principal=Principal(token_id=token.token_id, name=token.name, role=token.role),
        reader=runtime.reader,
        references=runtime.references,
        claim=claim,
    )


WriteContextDep = Annotated[WriteContext, Depends(get_write_context)]


async def submit_write(
    runtime: Runtime, ctx: WriteContext, prepared: PreparedWrite, *, status_code: int
) -> JSONResponse:
    """Hand the prepared write to this site and answer with what the site says (for a
    concurrent duplicate of an Idempotency-Key: the first answer, byte for byte)."""
    body = WriteAccepted(
        id=prepared.id,
        tx_id=prepared.envelope.tx_id,
        status=runtime.site.status,
        ids=prepared.created,
    ).model_dump(mode="json")
    answer = await runtime.site.submit(prepared.envelope, Answer(status_code, body), ctx.claim)
    return JSONResponse(answer.body, status_code=answer.status_code)
