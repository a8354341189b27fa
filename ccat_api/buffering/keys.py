"""Every Redis key of a site, its type and lifetime. The Lua scripts build the same names.

All keys live under ``P = ccat:{site}`` so several sites (or test runs) share one Redis.

- ``P:stream`` (stream): buffered envelopes (tx, seq, deps, env); entry deleted once settled.
- ``P:seq`` (string): the site's acceptance counter.
- ``P:tx:{tx_id}`` (hash): state, timestamps, LSN, attempts, errors; kept while buffered,
  applied or failed, then for ``tx_status_ttl_s`` after it became visible or was discarded.
- ``P:applied`` (zset): tx_id scored by commit LSN, waiting for the replica.
- ``P:dead`` (zset): dead-lettered tx_id scored by seq, until retried or discarded.
- ``P:recent`` (zset): every tx_id scored by seq, for status listings; capped by count.
- ``P:ov:{model}`` (hash): pk -> layers ``tx_id|seq|op|json``, one line per pending step.
- ``P:ovx:{model}`` (hash): pk -> the index entries and unique claims filed for it.
- ``P:ovi:{model}:{col}={value}`` (set): pks of overlay records with that value.
- ``P:ovu:{model}:{col}={digest}`` (string): the pk holding a unique value while buffered.
- ``P:idem:{principal}:{key}`` (string): first answer to an Idempotency-Key, for
  ``idempotency_ttl_s``.
- ``P:lease`` (string, lease TTL), ``P:lease:epoch`` (counter): one active processor.
- ``P:processor`` (hash): the processor's heartbeat, expiring if it dies.
- ``P:stats`` (hash): site-wide counters (accepted, applied, failed, visible, retried,
  discarded, batches, batch_transactions, batch_ms) and main_lsn, the newest commit LSN seen;
  kept forever, changed only inside the scripts whose change they count.
- ``P:wsticket:{jti}`` (string, ticket TTL): a WebSocket ticket already used.
- ``P:events`` (pub/sub channel): state changes for monitors.
"""

from __future__ import annotations

CONSUMER_GROUP = "processor"
# One active processor per site (the lease holder) reads as this consumer, so a successor
# finds its predecessor's unacknowledged entries in the same pending list.
CONSUMER_NAME = "active"
TX_ID_LENGTH = 36


class SiteKeys:
    def __init__(self, site: str) -> None:
        self.site = site
        self.prefix = f"ccat:{site}"
        self.stream = f"{self.prefix}:stream"
        self.seq = f"{self.prefix}:seq"
        self.applied = f"{self.prefix}:applied"
        self.dead = f"{self.prefix}:dead"
        self.recent = f"{self.prefix}:recent"
        self.lease = f"{self.prefix}:lease"
        self.lease_epoch = f"{self.prefix}:lease:epoch"
        self.processor = f"{self.prefix}:processor"
        self.events = f"{self.prefix}:events"
        self.stats = f"{self.prefix}:stats"

    def ws_ticket(self, jti: str) -> str:
        return f"{self.prefix}:wsticket:{jti}"

    def tx(self, tx_id: str) -> str:
        return f"{self.prefix}:tx:{tx_id}"

    def overlay(self, model: str) -> str:
        return f"{self.prefix}:ov:{model}"

    def overlay_index(self, model: str, entry: str) -> str:
        return f"{self.prefix}:ovi:{model}:{entry}"

    def idempotency(self, principal: str, key: str) -> str:
        return f"{self.prefix}:idem:{principal}:{key}"
