"""Atomic accept: one Redis round trip appends the envelope to the site's stream, records its
state, writes its overlay layers and stores the idempotency answer, or does none of it.

Durability comes from Redis itself: the site's Redis runs with ``appendfsync always``, so the
reply to the script is sent only after the AOF holding it is fsynced. A 2xx answer therefore
means the write survives the gateway dying and Redis restarting. ``durability.py`` checks
that configuration; while it does not hold, ``refusal`` says why and every write gets a 503.

The script is idempotent on ``tx_id``: the Redis client resends a command whose reply was
lost with the connection, and the resent accept answers as the first one did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.catalog import buffered
from ccat_api.buffering.envelope import Envelope
from ccat_api.buffering.idempotency import Answer, IdempotencyClaim, replay
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.layers import overlay_plan
from ccat_api.buffering.scripts import Scripts
from ccat_api.buffering.wire import text
from ccat_api.errors import BufferUnavailable, UniqueConflict


@dataclass(frozen=True, slots=True)
class Accepted:
    seq: int
    stream_id: str
    deps: tuple[str, ...]


class WriteBuffer:
    def __init__(self, redis: Redis, keys: SiteKeys, *, idempotency_ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)
        self._idempotency_ttl_s = idempotency_ttl_s
        # Why writes are refused now (this Redis could lose them), or None.
        self.refusal: str | None = None

    def refuse(self, reason: str | None) -> None:
        """Refuse every write with ``reason`` from now on (None: take them again)."""
        self.refusal = reason

    async def accept(
        self, envelope: Envelope, answer: Answer, claim: IdempotencyClaim | None = None
    ) -> Accepted | Answer:
        """Buffer the envelope; or, for an Idempotency-Key seen before, the first answer."""
        if self.refusal is not None:
            raise BufferUnavailable(f"the write buffer refuses writes: {self.refusal}")
        idem_keys: list[str] = []
        idem_record = b""
        if claim is not None:
            record = {"hash": claim.request_hash, "status": answer.status_code, "body": answer.body}
            idem_keys = [self._keys.idempotency(claim.principal, claim.key)]
            idem_record = orjson.dumps(record)
            # The same answer travels with the envelope: main records it when it applies the
            # write, so the key outlives this Redis copy.
            envelope = replace(envelope, idempotency={"principal": claim.principal, **record})
        try:
            reply = await self._scripts.accept(
                keys=[
                    self._keys.tx(envelope.tx_id),
                    self._keys.seq,
                    self._keys.stream,
                    self._keys.recent,
                    self._keys.stats,
                    self._keys.unsettled,
                    self._keys.visible_bucket(envelope.tx_id),
                    *idem_keys,
                ],
                args=[
                    self._keys.events,
                    *self._keys.overlay_families,
                    envelope.tx_id,
                    envelope.to_json(),
                    overlay_plan(envelope),
                    idem_record,
                    self._idempotency_ttl_s,
                    int(time.time() * 1000),
                ],
            )
        except (RedisError, OSError) as exc:
            raise BufferUnavailable(f"the write buffer cannot take writes now: {exc}") from exc
        outcome = text(reply[0])
        if outcome == "duplicate":
            assert claim is not None
            return replay(claim, orjson.loads(reply[1]))
        if outcome == "conflict":
            model, entry = text(reply[1]), text(reply[2])
            column = entry.split("=", 1)[0]
            buffered(model)  # a conflict can only name a buffered model
            raise UniqueConflict(
                f"{model}.{column}: this value is already used by a buffered record",
                field=column,
            )
        deps = text(reply[3])
        return Accepted(
            seq=int(reply[1]),
            stream_id=text(reply[2]),
            deps=tuple(d for d in deps.split(",") if d),
        )

    async def prior_answer(self, claim: IdempotencyClaim) -> Answer | None:
        try:
            raw = await self._redis.get(self._keys.idempotency(claim.principal, claim.key))
        except (RedisError, OSError) as exc:
            raise BufferUnavailable(f"the write buffer is unavailable now: {exc}") from exc
        return None if raw is None else replay(claim, orjson.loads(raw))

    async def warm_up(self) -> None:
        """Connect and load the scripts at start, so the first write pays for neither."""
        await self._scripts.load_all()
