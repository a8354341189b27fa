"""What the SDK raises. A refused request is an ``ApiError`` carrying the server's
``{"detail", "field", "code"}``; a request the network kept eating past the retry budget is a
``ConnectionFailed`` (the write may or may not have been accepted: send it again with the same
``idempotency_key``, which both errors carry).

    ClientError
    ├── ApiError              the server answered with an error (4xx, or 5xx after retries)
    ├── ConnectionFailed      no answer after every attempt (connect, cut, timeout)
    ├── WriteSpooled          (spool on) not delivered now: kept on disk, sent later in order
    ├── SpoolError            (spool on) the spool cannot be used
    │   └── SpoolFull             at its bound: this write was neither stored nor sent
    └── WaitError             wait_visible() did not see the transaction become visible
        ├── TransactionFailed     it became a dead letter (failed) or was discarded
        └── VisibilityTimeout     not visible within timeout_s (also a TimeoutError)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ccat_api.client.models import TransactionState


class ClientError(Exception):
    """Base of everything the SDK raises on purpose."""


class ApiError(ClientError):
    """The gateway refused the request (never retried for 4xx) or kept answering 5xx."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status_code: int,
        detail: str,
        field: str | None = None,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
        idempotency_key: str | None = None,
    ) -> None:
        where = f" (field {field})" if field else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(
            f"{method} {path} -> {status_code} {code or 'error'}{where}{tries}: {detail}"
        )
        self.method = method
        self.path = path
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.code = code
        self.errors = errors or []
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        self.idempotency_key = idempotency_key

    @classmethod
    def from_response(
        cls,
        response: httpx.Response,
        *,
        attempts: int = 1,
        idempotency_key: str | None = None,
        retry_after_s: float | None = None,
    ) -> ApiError:
        """Reads the gateway's error body; anything else (a proxy's HTML page) becomes the
        detail verbatim, shortened."""
        detail: str = response.reason_phrase or "error"
        field = code = None
        errors: list[dict[str, Any]] | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "detail" in body:
            detail = str(body["detail"])
            field = body.get("field") if isinstance(body.get("field"), str) else None
            code = body.get("code") if isinstance(body.get("code"), str) else None
            raw_errors = body.get("errors")
            if isinstance(raw_errors, list):
                errors = [e for e in raw_errors if isinstance(e, dict)]
        elif response.content:
            detail = response.text[:500]
        return cls(
            method=response.request.method,
            path=response.request.url.path,
            status_code=response.status_code,
            detail=detail,
            field=field,
            code=code,
            errors=errors,
            retry_after_s=retry_after_s,
            attempts=attempts,
            idempotency_key=idempotency_key,
        )


class ConnectionFailed(ClientError):
    """Every attempt failed in transport. The underlying httpx error is ``__cause__``."""

    def __init__(
        self, *, method: str, path: str, attempts: int, idempotency_key: str | None, reason: str
    ) -> None:
        key = f"; resend with Idempotency-Key {idempotency_key}" if idempotency_key else ""
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        super().__init__(f"{method} {path}: no answer after {tries} ({reason}){key}")
        self.method = method
        self.path = path
        self.attempts = attempts
        self.idempotency_key = idempotency_key
        self.reason = reason


class WriteSpooled(ClientError):
    """The gateway did not take the write now (no answer, 5xx, or earlier writes still
    waiting), so it stays in the spool, fsynced, and is sent in order when the gateway answers
    again. Its ids are not known until then; ``idempotency_key`` names it meanwhile."""

    def __init__(
        self, *, method: str, path: str, idempotency_key: str, seq: int, spool: str, reason: str
    ) -> None:
        super().__init__(
            f"{method} {path} not delivered yet ({reason}); kept as write #{seq} in the spool"
            f" {spool} with Idempotency-Key {idempotency_key}, to be sent in order"
        )
        self.idempotency_key = idempotency_key
        self.seq = seq
        self.spool = spool
        self.reason = reason


class SpoolError(ClientError):
    """The spool file cannot be used (another format, unreadable, not there)."""


class SpoolFull(SpoolError):
    """Taking the write would pass the spool's bound: it was neither stored nor sent."""


class WaitError(ClientError):
    def __init__(self, message: str, state: TransactionState | None) -> None:
        super().__init__(message)
        self.state = state


class TransactionFailed(WaitError):
    """The transaction is a dead letter (``failed``) or was ``discarded`` by an operator."""


class VisibilityTimeout(WaitError, TimeoutError):
    """The transaction did not become visible in time; ``state`` is the last one seen."""
