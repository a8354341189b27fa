"""Every Redis key of a site, its type and lifetime; the Lua scripts spell none of them.

All keys live under ``P = ccat:{site}`` so several sites (or test runs) share one Redis.

- ``P:stream`` (stream): buffered envelopes (tx, seq, deps, env); entry deleted once settled.
- ``P:seq`` (string): the site's acceptance counter.
- ``P:tx:{tx_id}`` (hash): state, timestamps, LSN, attempts, errors; kept while buffered,
  applied or failed, then for ``tx_status_ttl_s`` after it was discarded. Once visible, only
  the fields ``horizon.py`` keeps (``kept_*``) stay, until main's standbys have the commit.
- ``P:visible:{second}`` (hash): tx_id -> the compact status of a visible transaction
  (``status.lua``), by the second its UUIDv7 tx_id was made in; expires ``tx_status_ttl_s``
  after its last member became visible. A hash of a few hundred short fields is one
  listpack in Redis (``deploy/redis/redis.conf`` sets how large), so a settled status costs
  about its own bytes, where a hash of its own and a member of ``recent`` cost 450 B.
- ``P:visible`` (zset): those seconds, scored by themselves, for listings; ``P:visible:count``
  (hash): how many statuses each holds, and their ``total``.
- ``P:applied`` (zset): tx_id scored by commit LSN, waiting for the replica.
- ``P:dead`` (zset): dead-lettered tx_id scored by seq, until retried or discarded.
- ``P:undurable`` (zset): applied tx_id scored by commit LSN while main's standbys may not
  have it yet (``main_standby_names``); its status hash keeps the envelope (``kept_*``) until
  they do, so a failover of main that loses the commit is replayed (``horizon.py``).
- ``P:recent`` (zset): tx_id scored by seq, for status listings; a member goes when it
  becomes visible, or when its status hash has expired (retention.lua), and the count is
  capped besides.
- ``P:unsettled`` (zset): tx_id scored by seq while the transaction may still be sent to main
  (buffered or held); its lowest score is the site's replay watermark (``retention.py``).
- ``P:ov:{model}`` (hash): pk -> layers ``tx_id|seq|op|json``, one line per pending step.
- ``P:ovx:{model}`` (hash): pk -> the index entries and unique claims filed for it.
- ``P:ovi:{model}:{col}={value}`` (set): pks of overlay records with that value (every
  value a pending layer gave or found it, so a superset: reads fold and check).
- ``P:ovi:{model}:~fold`` (set): pks of overlay records that are more than one plain insert
  (an update or delete layer, several layers): a read folds them; the rest it may count.
- ``P:ovi:{model}:~by={col}`` (zset): plain inserts scored by ``col``, for the columns
  ``layers.ORDERED_COLUMNS`` names: a page walks these in order (``reads.py``).
- ``P:ovu:{model}:{col}={digest}`` (string): the pk holding a unique value while buffered.
- ``P:idem:{principal}:{key}`` (string): first answer to an Idempotency-Key, for
  ``idempotency_ttl_s``.
- ``P:lease`` (string, lease TTL), ``P:lease:epoch`` (counter): one active processor.
- ``P:processor`` (hash): the processor's heartbeat, expiring if it dies.
- ``P:stats`` (hash): site-wide counters (accepted, applied, failed, visible, retried,
  discarded, batches, batch_transactions, batch_ms) and main_lsn, the newest commit LSN seen;
  kept forever, changed only inside the scripts whose change they count.
- ``P:wsticket:{jti}`` (string, ticket TTL): a WebSocket ticket already used.
- ``P:quota:...`` (string, one rate-limit window): a token's critical writes in the current
  window, counted by the ``limits`` library (``buffering/quotas.py``), which names the rest.
- ``P:replica_probe`` (string): written after each critical write's accept, then WAITed on:
  a replica that has it has everything the write changed (replication is one ordered stream).
- ``P:history`` (stream, capped at history_retention_s / history_interval_s entries): one
  site status sample per period for the console's charts; entry id = the period's start in
  ms, so a period sampled by two gateways is kept once (``live/history.py``).
- ``P:events`` (pub/sub channel): state changes for monitors.

How the scripts get them: a key known before the call (``P:seq``, or the status hash of the
one transaction a script handles) is passed as KEYS, as Redis Cluster asks, so the call
names what the script touches. Keys a script finds only as it runs (the status hashes of a
batch, the overlay keys of the models a plan names) are built in Lua by appending to a
family prefix passed as an argument: ``tx_prefix`` and ``overlay_families``, which ``tx()``,
``overlay()`` and ``overlay_index()`` build their names from too. The events channel is not
a key and comes as an argument.
"""

from __future__ import annotations

CONSUMER_GROUP = "processor"
# One active processor per site (the lease holder) reads as this consumer, so a successor
# finds its predecessor's unacknowledged entries in the same pending list.
CONSUMER_NAME = "active"
# Joins the model and the entry ("column=value") in an index or unique-claim key name.
ENTRY_SEPARATOR = ":"
# Index entries that are not "column=value" start with '~' (no column name does): the set of
# records a read must fold, and the sorted sets by column ("~by=column@score" when filed).
FOLD_ENTRY = "~fold"
ORDER_ENTRY_PREFIX = "~by="
# The width of a visible-status bucket: a UUIDv7 tx_id's first 48 bits are its Unix ms.
VISIBLE_BUCKET_MS = 1000


class SiteKeys:
    def __init__(self, site: str) -> None:
        self.site = site
        self.prefix = f"ccat:{site}"
        self.stream = f"{self.prefix}:stream"
        self.seq = f"{self.prefix}:seq"
        self.replica_probe = f"{self.prefix}:replica_probe"
        self.applied = f"{self.prefix}:applied"
        self.dead = f"{self.prefix}:dead"
        self.undurable = f"{self.prefix}:undurable"
        self.recent = f"{self.prefix}:recent"
        self.unsettled = f"{self.prefix}:unsettled"
        self.lease = f"{self.prefix}:lease"
        self.lease_epoch = f"{self.prefix}:lease:epoch"
        self.processor = f"{self.prefix}:processor"
        self.events = f"{self.prefix}:events"
        self.stats = f"{self.prefix}:stats"
        self.history = f"{self.prefix}:history"
        self.quota_prefix = f"{self.prefix}:quota"
        self.tx_prefix = f"{self.prefix}:tx:"
        self.visible = f"{self.prefix}:visible"
        self.visible_prefix = f"{self.visible}:"
        self.visible_count = f"{self.visible}:count"
        self.overlay_prefix = f"{self.prefix}:ov:"
        self.overlay_filed_prefix = f"{self.prefix}:ovx:"
        self.overlay_index_prefix = f"{self.prefix}:ovi:"
        self.overlay_unique_prefix = f"{self.prefix}:ovu:"
        # In the order overlay.lua's overlay_families() takes them.
        self.overlay_families = (
            self.overlay_prefix,
            self.overlay_filed_prefix,
            self.overlay_index_prefix,
            self.overlay_unique_prefix,
            ENTRY_SEPARATOR,
        )

    def ws_ticket(self, jti: str) -> str:
        return f"{self.prefix}:wsticket:{jti}"

    def tx(self, tx_id: str) -> str:
        return self.tx_prefix + tx_id

    def visible_bucket(self, tx_id: str) -> str:
        return self.visible_prefix + str(visible_bucket(tx_id))

    def overlay(self, model: str) -> str:
        return self.overlay_prefix + model

    def overlay_index(self, model: str, entry: str) -> str:
        return self.overlay_index_prefix + model + ENTRY_SEPARATOR + entry

    def idempotency(self, principal: str, key: str) -> str:
        return f"{self.prefix}:idem:{principal}:{key}"


def visible_bucket(tx_id: str) -> int:
    """The bucket of a transaction's visible status: the second its UUIDv7 id was made in
    (status.lua's ``tx_bucket``)."""
    return int(tx_id[:8] + tx_id[9:13], 16) // VISIBLE_BUCKET_MS
