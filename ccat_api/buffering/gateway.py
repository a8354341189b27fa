"""The one door for a critical write, below the routes and free of FastAPI.

A route has the domain build the write (``PreparedWrite``: the envelope and its ids), then
hands it here. The gateway owns what every critical write shares: the Idempotency-Key claim
and the first answer for a retried one, the answer's shape (``{"id", "tx_id", "status",
"ids"}``), and the site switch. At a secondary site the write goes to the Redis buffer
(``buffer``, answered ``buffered`` once the replicas the site requires have it:
``replication``); at the main site it is applied on main at once
(``direct``, answered ``applied``). Routes never know which kind of site they run at.
Before any of that, ``admit`` refuses a write the site should not take now: the buffer near
capacity (``capacity``, 503) or the token over its write quota (``quotas``, 429).
"""

from __future__ import annotations

from ccat_api.buffering import idempotency
from ccat_api.buffering.buffer import Accepted, WriteBuffer
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.capacity import BufferCapacity
from ccat_api.buffering.direct import DirectApply
from ccat_api.buffering.idempotency import Answer, IdempotencyClaim
from ccat_api.buffering.quotas import WriteQuota
from ccat_api.buffering.recorded import RecordedAnswers
from ccat_api.buffering.replication import ReplicaConfirmation
from ccat_api.logs import TX_ID


class ReplayedAnswer(Exception):
    """Control flow, not an error: a retried request gets the first answer, verbatim."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replayed idempotent answer")
        self.answer = answer


class WriteGateway:
    def __init__(
        self,
        *,
        buffer: WriteBuffer | None = None,
        replicas: ReplicaConfirmation | None = None,
        direct: DirectApply | None = None,
        capacity: BufferCapacity | None = None,
        quota: WriteQuota | None = None,
        recorded: RecordedAnswers | None = None,
    ) -> None:
        if (buffer is None) == (direct is None):
            raise ValueError("a site writes one way: through its buffer or directly on main")
        self._buffer = buffer
        self._replicas = replicas
        self._direct = direct
        self.capacity = capacity
        self._quota = quota
        # At a secondary site: main's records, on the replica, for a key Redis forgot.
        self._recorded = recorded

    @property
    def status(self) -> str:
        """What this site's answers say of an accepted write."""
        return "buffered" if self._buffer is not None else "applied"

    async def admit(self, principal: str) -> None:
        """Refuse a write before anything is done for it: 503 while the buffer is near
        capacity (from a cached reading: no round trip), 429 when ``principal`` is over its
        write quota (one round trip to count it)."""
        if self.capacity is not None:
            self.capacity.check()
        if self._quota is not None:
            await self._quota.spend(principal)

    async def claim(
        self, principal: str, key: str, *, method: str, path: str, body: bytes
    ) -> IdempotencyClaim:
        """Claim an Idempotency-Key for this request. A retry is answered with its first
        answer (raised as ReplayedAnswer): validated against today's state, it would be
        refused for what its first attempt changed (a finished unit, a taken path)."""
        claim = idempotency.claim(principal, key, method=method, path=path, body=body)
        if self._buffer is not None:
            prior = await self._buffer.prior_answer(claim)
            if prior is None and self._recorded is not None:
                prior = await self._recorded.prior_answer(claim)
            if prior is not None and self._replicas is not None:
                await self._replicas.confirm()  # the first attempt may have got a 503 for this
        else:
            assert self._direct is not None
            prior = await self._direct.prior_answer(claim)
        if prior is not None:
            raise ReplayedAnswer(prior)
        return claim

    async def submit(
        self, prepared: PreparedWrite, claim: IdempotencyClaim | None, *, status_code: int
    ) -> Answer:
        """Buffer or apply the write; the answer to give (for a concurrent duplicate of an
        Idempotency-Key: the first answer, byte for byte)."""
        TX_ID.set(prepared.envelope.tx_id)
        answer = Answer(
            status_code,
            {
                "id": str(prepared.id),
                "tx_id": prepared.envelope.tx_id,
                "status": self.status,
                "ids": [str(i) for i in prepared.created],
            },
        )
        if self._buffer is not None:
            accepted = await self._buffer.accept(prepared.envelope, answer, claim)
            if self.capacity is not None and isinstance(accepted, Accepted):
                self.capacity.accepted()
            if self._replicas is not None:
                await self._replicas.confirm()
            return answer if isinstance(accepted, Accepted) else accepted
        assert self._direct is not None
        return await self._direct.submit(prepared.envelope, answer, claim)
