"""What a spool holds and hands out: its writes, whom each is for, the refusals set aside,
and a status for people."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass

from ccat_api.client.call import Call, write_call
from ccat_api.client.models import WriteResult

_API_TOKEN = re.compile(r"^ccat_([0-9A-Za-z]+)_")


@dataclass(frozen=True)
class Destination:
    """Where a spooled write goes and as whom. A write is resent only with the token it was
    made with: the gateway scopes an Idempotency-Key to its token (under another token a
    write already taken would be taken again) and records who wrote it."""

    gateway: str
    credential: str
    """SHA-256 of the token: never the token itself."""
    token_name: str
    """What people call the token: an API token's public prefix."""

    @classmethod
    def of(cls, base_url: str, token: str) -> Destination:
        digest = hashlib.sha256(token.encode()).hexdigest()
        public = _API_TOKEN.match(token)
        name = f"token {public.group(1)}" if public else f"token sha256:{digest[:12]}"
        return cls(base_url.rstrip("/"), digest, name)


@dataclass(frozen=True)
class SpooledWrite:
    seq: int
    idempotency_key: str
    method: str
    path: str
    body: str | None
    destination: Destination
    spooled_at: float
    attempts: int
    last_error: str | None
    """Why its last send did not get it delivered."""

    def call(self) -> Call[WriteResult]:
        body = None if self.body is None else json.loads(self.body)
        return write_call(self.method, self.path, body, self.idempotency_key)


@dataclass(frozen=True)
class Rejection:
    seq: int
    idempotency_key: str
    method: str
    path: str
    rejected_at: float
    status_code: int
    error: str


@dataclass(frozen=True)
class SpoolStatus:
    path: str
    entries: int
    size_bytes: int
    """The bodies waiting."""
    file_bytes: int
    """The files on disk (the database and its write-ahead log)."""
    max_entries: int
    max_bytes: int
    oldest_spooled_at: float | None
    head: SpooledWrite | None
    """The next write to send: its ``last_error`` is what holds the spool back."""
    sender_pid: int | None
    """A process sending the spool now."""
    destinations: list[tuple[Destination, int]]
    rejected: int
    last_rejection: Rejection | None

    @property
    def oldest_age_s(self) -> float | None:
        return None if self.oldest_spooled_at is None else time.time() - self.oldest_spooled_at
