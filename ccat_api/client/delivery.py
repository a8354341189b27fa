"""Sending the spool in order: what a write does when its client has a spool, and a flush.

A write goes into the spool first (``spool.py``); then its caller sends, oldest first and one
at a time, every write up to and including it, each under the retry policy. A 2xx deletes a
write; so does a refusal that sending again cannot change (kept in the spool's ``rejected``
and logged). No answer, a 5xx or a refused token stops the sending: that write and all
behind it wait, and the caller gets ``WriteSpooled``. A refusal of the caller's own write is
raised to it as ``ApiError`` and nothing is kept, as without a spool.

After a failure this process tries the gateway again only when ``Pacing`` says so, and then
with one attempt; a background sender, where there is one, does that trying. So a write made
during an outage costs one fsync and never waits on the network; nor does one made while a
flush sends a backlog: it is spooled behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ccat_api.client.call import Call
from ccat_api.client.errors import ApiError, ClientError, ConnectionFailed, WriteSpooled
from ccat_api.client.program import Pause, Program
from ccat_api.client.sendlock import LockState
from ccat_api.client.spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, Spool
from ccat_api.client.spool_records import Destination, SpooledWrite

T = TypeVar("T")

log = logging.getLogger("ccat_api.client")

# How often a write waiting for another thread of this process to finish sending looks again.
LOCK_POLL_S = 0.005
# Refusals that can change when nothing about the write does: a token revoked by mistake or
# not yet replicated (401/403), or the gateway asking to slow down.
_WAIT_FOR = frozenset({401, 403, 408, 425, 429})


@dataclass(frozen=True)
class SpoolOptions:
    """A client's spool: ``Client(url, token, spool=SpoolOptions(path, ...))``, or
    ``spool=path`` for these defaults."""

    path: str | os.PathLike[str]
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    # After the gateway failed to answer, this process tries again after resend_initial_s,
    # doubling up to resend_max_s; meanwhile writes go straight to the spool, without waiting.
    resend_initial_s: float = 1.0
    resend_max_s: float = 30.0
    # A thread (Client) or task (AsyncClient) that sends the spool while the program writes
    # nothing; without it the spool is sent by the next write or flush_spool().
    background: bool = True

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        if not 0 < self.resend_initial_s <= self.resend_max_s:
            raise ValueError("resend_initial_s must be positive and at most resend_max_s")


@dataclass
class FlushReport:
    """What a flush did: ``blocked_by`` says why writes are left, when any are."""

    delivered: int = 0
    rejected: list[str] = field(default_factory=list)
    remaining: int = 0
    blocked_by: str | None = None


class Blocked(Exception):
    """The write at the head of the spool cannot be sent now; nothing behind it may be."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Pacing:
    """When this process next tries the gateway, after sending failed: ``resend_initial_s``
    later, doubling to ``resend_max_s``, and at once again after any success."""

    def __init__(self, options: SpoolOptions) -> None:
        self.options = options
        self.delay_s = 0.0
        self.next_at = 0.0
        self.reason: str | None = None

    @property
    def failing(self) -> bool:
        """The gateway did not take the last write this process tried."""
        return self.reason is not None

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def wait_s(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def failed(self, reason: str) -> None:
        options = self.options
        self.delay_s = min(max(self.delay_s * 2, options.resend_initial_s), options.resend_max_s)
        self.next_at = time.monotonic() + self.delay_s
        self.reason = reason

    def succeeded(self) -> None:
        self.delay_s, self.next_at, self.reason = 0.0, 0.0, None


def permanent(error: ApiError) -> bool:
    """Whether sending ``error``'s write again can only get the same refusal."""
    return 400 <= error.status_code < 500 and error.status_code not in _WAIT_FOR


class SpoolSender:
    """A client's side of its spool: the spool, who the client writes as, and its pacing."""

    def __init__(self, options: SpoolOptions, destination: Destination) -> None:
        self.options = options
        self.destination = destination
        self.spool = Spool(options.path, max_entries=options.max_entries,
                           max_bytes=options.max_bytes)  # fmt: skip
        self.pacing = Pacing(options)
        self._flushing = False

    def write(self, call: Call[T]) -> Program[T]:
        """Deliver ``call`` through the spool: its answer, ``WriteSpooled``, or the
        ``ApiError`` of its refusal."""
        call = stamped(call)
        seq = self.spool.append(call, self.destination)
        pacing = self.pacing
        if pacing.reason is not None and (self.options.background or not pacing.due()):
            # The gateway was away at the last try; the background sender looks again in its
            # own time, so a write made during an outage never waits on the network.
            raise self._spooled(call, seq, pacing.reason)
        state = yield from self._lock(wait=True)
        if state is LockState.BUSY_HERE:
            raise self._spooled(call, seq, "behind earlier writes, which are being sent now")
        if state is not LockState.HELD:
            raise self._spooled(call, seq, state.value)
        try:
            try:
                answer: T = yield from self._send(until=seq, own=call, probe=pacing.failing)
            except Blocked as blocked:
                raise self._spooled(call, seq, blocked.reason) from blocked.__cause__
            return answer
        finally:
            self.spool.lock.release()

    def flush(self, *, when_due: bool = False) -> Program[FlushReport]:
        """Send every spooled write now (``when_due``: only if the pacing allows)."""
        report = FlushReport()
        if when_due and (not self.pacing.due() or self.spool.first() is None):
            report.blocked_by = self.pacing.reason
            report.remaining = self.spool.count()
            return report
        state = yield from self._lock(wait=not when_due)
        if state is not LockState.HELD:
            report.blocked_by = state.value
        else:
            self._flushing = True
            try:
                yield from self._send(
                    until=None, report=report, probe=when_due and self.pacing.failing
                )
            except Blocked as blocked:
                report.blocked_by = blocked.reason
            finally:
                self._flushing = False
                self.spool.lock.release()
        report.remaining = self.spool.count()
        return report

    def next_check_s(self) -> float:
        """How long a background sender sleeps before it looks whether to send."""
        return max(self.pacing.wait_s(), self.options.resend_initial_s)

    def _lock(self, *, wait: bool) -> Program[LockState]:
        """The send lock; ``wait``: while another write of this process holds it (it sends
        in order and stops at its own write, so ours comes soon), not while a flush does (it
        may have a day's backlog to send, ours among it)."""
        while True:
            state = self.spool.lock.try_acquire()
            if state is not LockState.BUSY_HERE or not wait or self._flushing:
                return state
            yield Pause(LOCK_POLL_S)

    def _send(
        self,
        *,
        until: int | None,
        own: Call[Any] | None = None,
        report: FlushReport | None = None,
        probe: bool = False,
    ) -> Program[Any]:
        """Send the spool oldest first, up to write ``until`` (everything when None);
        ``own``: the caller's call for write ``until``, whose answer is returned. ``probe``:
        the first send only finds out whether the gateway is back, in one attempt (the retry
        budget is five connect timeouts while its host is down)."""
        if report is None:
            report = FlushReport()
        while (write := self.spool.first()) is not None and (until is None or write.seq <= until):
            if write.destination != self.destination:
                raise Blocked(_elsewhere(write))
            mine = write.seq == until
            call = own if mine and own is not None else write.call()
            if probe:
                call, probe = dataclasses.replace(call, max_attempts=1), False
            try:
                answer = yield call
            except ConnectionFailed as error:
                raise self._blocked(write, error) from error
            except ApiError as error:
                if error.status_code >= 500 or not (mine or permanent(error)):
                    raise self._blocked(write, error) from error
                if mine:
                    # The caller hears the refusal itself; nothing is left to resend.
                    self.spool.delivered(write.seq)
                    raise
                self.spool.reject(write, error)
                report.rejected.append(f"#{write.seq} {error}")
                log.warning("spooled write #%d refused, kept in rejected: %s", write.seq, error)
                continue
            self.spool.delivered(write.seq)
            self.pacing.succeeded()
            report.delivered += 1
            if mine:
                return answer
        if until is None or own is None:
            return None
        return (yield from self._taken_elsewhere(until, own))

    def _taken_elsewhere(self, seq: int, own: Call[T]) -> Program[T]:
        """The caller's write left the spool while it waited for the lock: another sender
        sent it. Its answer is the first one, which its key gets again."""
        refused = self.spool.rejection(seq)
        if refused is not None:
            raise ApiError(
                method=refused.method, path=refused.path, status_code=refused.status_code,
                detail=refused.error, idempotency_key=refused.idempotency_key,
            )  # fmt: skip
        answer: T = yield own
        return answer

    def _blocked(self, write: SpooledWrite, error: ClientError) -> Blocked:
        reason = why(error)
        self.spool.failed(write.seq, reason, attempts=getattr(error, "attempts", 1))
        self.pacing.failed(reason)
        return Blocked(reason)

    def _spooled(self, call: Call[Any], seq: int, reason: str) -> WriteSpooled:
        assert call.idempotency_key is not None
        return WriteSpooled(
            method=call.method, path=call.path, idempotency_key=call.idempotency_key, seq=seq,
            spool=os.fspath(self.options.path), reason=reason,
        )  # fmt: skip

    def close(self) -> None:
        self.spool.close()


def stamped(call: Call[T]) -> Call[T]:
    """``call`` with its "now" field set to now, when the caller left it to the gateway: the
    gateway may see the write hours after it was made."""
    if call.stamp is None or not isinstance(call.json, dict) or call.json.get(call.stamp):
        return call
    now = datetime.now(UTC).isoformat()
    return dataclasses.replace(call, json={**call.json, call.stamp: now})


def why(error: ClientError) -> str:
    """What kept a write from being delivered, in a few words."""
    if isinstance(error, ConnectionFailed):
        return f"no answer after {error.attempts} attempt(s): {error.reason}"
    if isinstance(error, ApiError):
        return f"{error.status_code} {error.code or 'error'}: {error.detail}"
    return str(error)


def _elsewhere(write: SpooledWrite) -> str:
    return (
        f"write #{write.seq} was spooled for {write.destination.gateway} with"
        f" {write.destination.token_name}: send it with that gateway and token"
    )
