"""Idempotency-Keys: a client's key, scoped to its principal, with a digest of the request, and
the answer given the first time. A retry with the same key and body gets that answer; the same
key with another body is refused. Both kinds of site (the buffer, main's direct apply) keep
answers under a claim and check a retry the same way, here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ccat_api.errors import BadRequest, IdempotencyKeyExpired, IdempotencyKeyReused

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    principal: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client was (or will be) told; replayed verbatim for a repeated key."""

    status_code: int
    body: dict[str, Any]


def claim(principal: str, key: str, *, method: str, path: str, body: bytes) -> IdempotencyClaim:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )
    try:
        # The same parser the API uses, then a canonical form: key order and spacing of a
        # retried body do not matter.
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical)
    return IdempotencyClaim(principal=principal, key=key, request_hash=digest.hexdigest())


def replay(claim: IdempotencyClaim, prior: dict[str, Any]) -> Answer:
    """The first answer for this claim (``prior``: its recorded hash, status and body).

    A body of None is a tombstone (main keeps one after the answer's time is up, see
    db/pruning.py): the key's write was applied then and must not be applied again."""
    if prior["hash"] != claim.request_hash:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {claim.key!r} was already used with a different request",
            field="Idempotency-Key",
        )
    if prior["body"] is None:
        raise IdempotencyKeyExpired(
            f"Idempotency-Key {claim.key!r} was already used for this request, which was"
            " applied; its answer is no longer kept, so it is not applied again. Look the"
            " records up, or send a new key for a new write",
            field="Idempotency-Key",
        )
    return Answer(status_code=int(prior["status"]), body=prior["body"])
