-- Transactions whose commit LSN the local replica has replayed become visible: their overlay
-- layers are dropped (a record stays while a newer pending transaction still has a layer) and
-- their status hashes are folded into the compact buckets kept for days (status.lua).
-- KEYS: applied, recent, stats, unsettled, visible index, visible counts
-- ARGV: events channel, overlay families (5), status hash prefix, replay lsn, now (ms),
--       status ttl (s), max per call, recent cap, claim grace (ms), visible prefix,
--       visible bucket width (ms)
local applied_key, recent_key, stats_key, unsettled_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel, overlay = ARGV[1], overlay_families(unpack(ARGV, 2, 6))
local tx_prefix, replay_lsn, now_ms = ARGV[7], ARGV[8], ARGV[9]
local limit, recent_cap = tonumber(ARGV[11]), tonumber(ARGV[12])
local claim_grace_ms = tonumber(ARGV[13])
local visible = visible_families(ARGV[14], KEYS[5], KEYS[6], ARGV[15], ARGV[10])
local ready = redis.call('ZRANGEBYSCORE', applied_key, '-inf', replay_lsn,
  'LIMIT', 0, limit)
local events = {}
for _, tx_id in ipairs(ready) do
  drop_layers(overlay, tx_id, redis.call('HGET', tx_prefix .. tx_id, 'touched') or '',
    claim_grace_ms)
  table.insert(events, {tx_id = tx_id, state = 'visible', lsn = tonumber(replay_lsn),
    at = tonumber(now_ms)})
end
-- One ZREM per index for the whole call, rather than commands per transaction.
if #ready > 0 then
  settle_visible(tx_prefix, visible, ready, now_ms)
  redis.call('ZREM', applied_key, unpack(ready))
  redis.call('ZREM', unsettled_key, unpack(ready))
  redis.call('ZREM', recent_key, unpack(ready))
  redis.call('ZREMRANGEBYRANK', recent_key, 0, -(recent_cap + 1))
end
publish_all(channel, events)
count(stats_key, 'visible', #ready)
-- The oldest commit LSN still waiting (false when none), so the tracker knows when to look.
local oldest = redis.call('ZRANGE', applied_key, 0, 0, 'WITHSCORES')
return {ready, oldest[2] or false}
