"""The main site's way of writing: a critical write applied on main at once, through the same
server-side function the replay uses (``ccat_apply_direct``), so both paths enforce the same
rules and record the same tx_id. One statement, committed on its own: the idempotency key,
the apply and the answer in a single round trip. Answers ``status: "applied"``."""

from __future__ import annotations

import logging
import time

import orjson
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.envelope import BufferedTransaction, Envelope
from ccat_api.buffering.idempotency import Answer, IdempotencyClaim, replay
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.payload import build_payload
from ccat_api.buffering.recorded import RecordedAnswers
from ccat_api.db.engines import PrimaryDatabase
from ccat_api.errors import (
    CcatError,
    InvalidReference,
    NotFound,
    StateConflict,
    UniqueConflict,
    Unprocessable,
)

log = logging.getLogger(__name__)


_APPLY_DIRECT = sa.text(
    "SELECT ccat_apply_direct(:site, CAST(:batch AS jsonb), :principal, :key, :hash, :status,"
    " CAST(:response AS jsonb))"
)


class DirectApply:
    """Main site: applied through the same server-side function the replay uses, so both
    paths enforce the same rules and record the same tx_id. One statement, committed on
    its own: key, apply and answer in a single round trip."""

    status = "applied"

    def __init__(
        self,
        primary: PrimaryDatabase,
        site: str,
        *,
        redis: Redis | None = None,
        keys: SiteKeys | None = None,
    ) -> None:
        self._primary = primary
        self._recorded = RecordedAnswers(primary, required=True)
        self._site = site
        # A main site with a Redis publishes its writes for monitors, as secondary sites do.
        self._redis = redis
        self._keys = keys

    async def prior_answer(self, claim: IdempotencyClaim) -> Answer | None:
        return await self._recorded.prior_answer(claim)

    async def submit(
        self, envelope: Envelope, answer: Answer, claim: IdempotencyClaim | None
    ) -> Answer:
        # The careful path reports which step failed and why.
        payload = build_payload([BufferedTransaction(envelope, seq=0, deps=())], fast=False)
        report = await self._primary.call(
            _APPLY_DIRECT,
            {
                "site": self._site,
                "batch": orjson.dumps(payload).decode(),
                "principal": claim.principal if claim else None,
                "key": claim.key if claim else None,
                "hash": claim.request_hash if claim else None,
                "status": answer.status_code,
                "response": orjson.dumps(answer.body).decode(),
            },
        )
        # SQLAlchemy's asyncpg dialect already decodes jsonb results.
        if isinstance(report, str | bytes):
            report = orjson.loads(report)
        if "prior" in report:
            assert claim is not None
            return replay(claim, report["prior"])
        if report["failures"]:
            failure = report["failures"][0]
            raise _error_for(failure["code"], failure["error"])
        await self._publish(envelope.tx_id)
        return answer

    async def _publish(self, tx_id: str) -> None:
        if self._redis is None or self._keys is None:
            return
        event = {"tx_id": tx_id, "state": "applied", "at": int(time.time() * 1000)}
        try:
            await self._redis.publish(self._keys.events, orjson.dumps(event))
        except (RedisError, OSError) as exc:
            # The write is committed; monitors miss one event, which pub/sub never promised.
            log.warning("could not publish the event for %s: %s", tx_id, exc)


def _error_for(sqlstate: str, message: str) -> CcatError:
    """Requests are validated before they get here; these are races with other writers."""
    if sqlstate == "23505":
        return UniqueConflict(f"a unique value is already taken: {message}")
    if sqlstate == "23503":
        return InvalidReference(f"a referenced record does not exist: {message}")
    if sqlstate == "P0002":
        return NotFound(message)
    if sqlstate == "conflict":
        return StateConflict(f"{message}: read the record again and send the change again")
    if sqlstate.startswith(("22", "23")):
        return Unprocessable(message)
    return CcatError(f"main refused the write ({sqlstate}): {message}")
