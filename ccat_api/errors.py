"""The error tree. Every class carries its HTTP status; the API renders them all one way:
``{"detail": message, "field": name-or-null, "code": machine-readable}``.

    CcatError (500)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    │   ├── UniqueConflict          a unique value is already taken (replica or buffer)
    │   ├── StateConflict           the record is not in a state that allows this
    │   └── IdempotencyKeyExpired   the key was used; its answer is no longer kept
    ├── Unprocessable (422)
    │   ├── InvalidReference        a referenced record does not exist
    │   └── IdempotencyKeyReused    same Idempotency-Key, different request
    ├── RateLimited (429)           the token has used its write quota for now
    └── ServiceUnavailable (503)
        ├── BufferUnavailable       Redis cannot take the write durably
        │   └── BufferNearCapacity  the site's Redis is near its maxmemory (backpressure)
        └── MainUnavailable         main database unreachable for a non-buffered operation

A refusal worth retrying (429, 503) carries ``retry_after_s``, sent as ``Retry-After``.

The buffering pipeline raises these too; it never imports FastAPI.
"""

from __future__ import annotations


class CcatError(Exception):
    status_code = 500
    code = "internal_error"
    retry_after_s: int | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        return {"detail": self.message, "field": self.field, "code": self.code}


class BadRequest(CcatError):
    status_code = 400
    code = "bad_request"


class Unauthorized(CcatError):
    status_code = 401
    code = "unauthorized"


class Forbidden(CcatError):
    status_code = 403
    code = "forbidden"


class NotFound(CcatError):
    status_code = 404
    code = "not_found"


class Conflict(CcatError):
    status_code = 409
    code = "conflict"


class UniqueConflict(Conflict):
    code = "unique_conflict"


class StateConflict(Conflict):
    code = "state_conflict"


class IdempotencyKeyExpired(Conflict):
    code = "idempotency_key_expired"


class Unprocessable(CcatError):
    status_code = 422
    code = "unprocessable"


class InvalidReference(Unprocessable):
    code = "invalid_reference"

    @classmethod
    def missing(cls, field: str, what: str, ref: object) -> InvalidReference:
        """The record ``field`` names is not there; every such refusal reads the same, so a
        client can rely on one wording."""
        return cls(f"{field}: {what} {ref} does not exist", field=field)


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class RateLimited(CcatError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(CcatError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class BufferUnavailable(ServiceUnavailable):
    code = "buffer_unavailable"


class BufferNearCapacity(BufferUnavailable):
    code = "buffer_near_capacity"


class MainUnavailable(ServiceUnavailable):
    code = "main_unavailable"


def first_line(exc: BaseException, silent: str | None = None) -> str:
    """A backend failure in one line, for a status or a frame: its message's first line, or
    its type (and ``silent``, say "no answer" for a timeout) when it has no message."""
    text = str(exc)
    if text.strip():
        return text.splitlines()[0]
    return f"{type(exc).__name__}: {silent}" if silent else type(exc).__name__
