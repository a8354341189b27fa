-- Transactions whose commit LSN the local replica has replayed become visible: their overlay
-- layers are dropped (a record stays while a newer pending transaction still has a layer).
-- ARGV: prefix, replay lsn, now (ms), status ttl (s), max per call, recent cap, claim grace (ms)
local prefix, replay_lsn, now_ms = ARGV[1], ARGV[2], ARGV[3]
local ttl, limit, recent_cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local claim_grace_ms = tonumber(ARGV[7])
local ready = redis.call('ZRANGEBYSCORE', prefix .. ':applied', '-inf', replay_lsn,
  'LIMIT', 0, limit)
local events = {}
for _, tx_id in ipairs(ready) do
  local txkey = prefix .. ':tx:' .. tx_id
  drop_layers(prefix, tx_id, redis.call('HGET', txkey, 'touched') or '', claim_grace_ms)
  redis.call('HSET', txkey, 'state', 'visible', 'visible_at', now_ms)
  redis.call('EXPIRE', txkey, ttl)
  redis.call('ZREM', prefix .. ':applied', tx_id)
  table.insert(events, {tx_id = tx_id, state = 'visible', lsn = tonumber(replay_lsn),
    at = tonumber(now_ms)})
end
publish_all(prefix, events)
count(prefix, 'visible', #ready)
if #ready > 0 then
  redis.call('ZREMRANGEBYRANK', prefix .. ':recent', 0, -(recent_cap + 1))
end
-- The oldest commit LSN still waiting (false when none), so the tracker knows when to look.
local oldest = redis.call('ZRANGE', prefix .. ':applied', 0, 0, 'WITHSCORES')
return {ready, oldest[2] or false}
