"""A client of either kind with a spool, driven from synchronous test code, against a
scripted gateway that can be down, busy or silent (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccat_api.client import AsyncClient, Client, SpoolOptions, WriteResult, WriteSpooled
from tests.unit.client.fake_gateway import BASE_URL, FAST, TOKEN, Kind, accepted, refused

TRANSFER = "019a4c2e-7f00-7000-8000-000000000005"


@dataclass
class Gateway:
    """Takes every write while up (fresh ids each time; a key it has seen gets its first
    answer again, as the real one does), refuses connections while down and answers 503 while
    busy; ``refuse`` answers the writes whose ``message`` it names with a refusal instead."""

    up: bool = True
    busy: bool = False
    silent_s: float | None = None
    """While set: a host that does not answer, a connect timeout after this long."""
    answer_after_s: float = 0.0
    refuse: dict[str, httpx.Response] = field(default_factory=dict)
    taken: list[httpx.Request] = field(default_factory=list)
    tried: int = 0
    first_answers: dict[str, httpx.Response] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.tried += 1
        if self.silent_s is not None:
            time.sleep(self.silent_s)
            raise httpx.ConnectTimeout("timed out")
        if not self.up:
            raise httpx.ConnectError("connection refused")
        time.sleep(self.answer_after_s)
        if self.busy:
            return refused(503, "buffer unavailable", None, "buffer_unavailable")
        key = request.headers["idempotency-key"]
        if key in self.first_answers:
            first = self.first_answers[key]
            return httpx.Response(first.status_code, content=first.content)
        self.taken.append(request)
        body = json.loads(request.content) if request.content else {}
        answer = self.refuse.get(body.get("message", ""), accepted())
        self.first_answers[key] = answer
        return answer

    def messages(self) -> list[str]:
        return [json.loads(r.content)["message"] for r in self.taken]


class Instrument:
    """A client of either kind with a spool, driven from synchronous test code."""

    def __init__(self, kind: Kind, gateway: Gateway, path: Path, token: str = TOKEN,
                 **spool: Any) -> None:  # fmt: skip
        options = SpoolOptions(path, **{"background": False, **spool})
        transport = httpx.MockTransport(gateway)
        self.kind = kind
        self.client: Client | AsyncClient
        if kind == "sync":
            self.client = Client(BASE_URL, token, retry=FAST, transport=transport, spool=options)
        else:
            self.loop = asyncio.Runner()
            self.client = AsyncClient(
                BASE_URL, token, retry=FAST, transport=transport, spool=options
            )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if not inspect.iscoroutinefunction(method):
            return method  # type: ignore[no-any-return]
        return lambda *args, **kwargs: self.loop.run(method(*args, **kwargs))

    def log(self, message: str, **extra: Any) -> WriteResult:
        result: WriteResult = self.log_transfer(TRANSFER, {"message": message}, **extra)
        return result

    def close(self) -> None:
        if isinstance(self.client, AsyncClient):
            self.loop.run(self.client.aclose())
            self.loop.close()
        else:
            self.client.close()


def written_while_down(
    instrument: Instrument, gateway: Gateway, *messages: str
) -> list[WriteSpooled]:
    """Log ``messages`` while the gateway is down (each is spooled); then it is back."""
    gateway.up = False
    spooled = []
    for message in messages:
        with pytest.raises(WriteSpooled) as raised:
            instrument.log(message)
        spooled.append(raised.value)
    gateway.up = True
    return spooled
