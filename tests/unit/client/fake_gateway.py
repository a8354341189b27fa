"""A scripted HTTP peer for the SDK's unit tests (httpx.MockTransport), and a way to run
one operation through either client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ccat_api.client import AsyncClient, Client, RetryEvent, RetryPolicy

BASE_URL = "http://gateway.test"
TOKEN = "ccat_test_secret"
# No waiting in unit tests: backoff and Retry-After are checked through the events.
FAST = RetryPolicy(
    max_attempts=4, backoff_initial_s=0, backoff_max_s=0, backoff_jitter_s=0, retry_after_cap_s=0
)

Step = httpx.Response | Exception
Kind = Literal["sync", "async"]


def accepted(status_code: int = 201) -> httpx.Response:
    new_id = str(uuid.uuid4())
    body = {"id": new_id, "tx_id": str(uuid.uuid4()), "status": "buffered", "ids": [new_id]}
    return httpx.Response(status_code, json=body)


def refused(status_code: int, detail: str, field: str | None, code: str) -> httpx.Response:
    return httpx.Response(status_code, json={"detail": detail, "field": field, "code": code})


def transaction(state: str, **extra: Any) -> httpx.Response:
    body = {
        "tx_id": str(uuid.uuid4()), "state": state, "seq": 1, "created_at": 1.0,
        "applied_at": None, "visible_at": None, "failed_at": None, "lsn": None, "attempts": 0,
        "last_error": None, "error_code": None, "error": None, "depends_on": [], "records": [],
    }  # fmt: skip
    return httpx.Response(200, json={**body, **extra})


def site_info(site_type: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "site_name": "observatory", "site_type": site_type, "critical_writes": "buffered",
            "reads": "local replica merged with buffer", "schema_revision": "0007",
            "processor_in_gateway": False,
        },
    )  # fmt: skip


@dataclass
class FakeGateway:
    """Answers each request with the next scripted step (a response, or an exception the
    transport raises); ``routes`` answer matching paths instead, every time."""

    steps: list[Step] = field(default_factory=list)
    routes: dict[str, Callable[[], httpx.Response]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in self.routes:
            return self.routes[request.url.path]()
        if not self.steps:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]

    def body(self, n: int = -1) -> Any:
        return json.loads(self.requests[n].content)


def run(
    kind: Kind,
    gateway: FakeGateway,
    operation: str,
    *args: Any,
    retry: RetryPolicy = FAST,
    events: list[RetryEvent] | None = None,
    **kwargs: Any,
) -> Any:
    """``operation`` of a Client or an AsyncClient, against ``gateway``."""
    seen = events if events is not None else []
    transport = httpx.MockTransport(gateway)
    if kind == "sync":
        with Client(
            BASE_URL, TOKEN, retry=retry, on_retry=seen.append, transport=transport
        ) as client:
            return getattr(client, operation)(*args, **kwargs)

    async def go() -> Any:
        async with AsyncClient(
            BASE_URL, TOKEN, retry=retry, on_retry=seen.append, transport=transport
        ) as client:
            return await getattr(client, operation)(*args, **kwargs)

    return asyncio.run(go())
