-- The site's share of retention, run by the processor now and then, busy or idle.
-- 1. The unsettled index loses, from its low end, transactions that will never be sent to main
--    under their seq again: applied, visible, failed (a retry takes a new seq), discarded, or
--    gone. visible.lua removes most as they settle; this catches the rest (a dead letter).
-- 2. The recent index loses, from its low end, transactions whose status hash has expired,
--    and the visible index the buckets that have expired (with their counts).
-- 3. The answer: the site's watermark, the lowest seq it may still send to main (the lowest
--    unsettled seq, else the next seq to be given), and how much was dropped.
-- KEYS: unsettled, recent, seq, visible index, visible counts
-- ARGV: status hash prefix, members looked at per index at most, visible prefix
local unsettled_key, recent_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local visible_index, visible_counts = KEYS[4], KEYS[5]
local tx_prefix, limit, visible_prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local settled = {applied = true, visible = true, failed = true, discarded = true}

local dropped = 0
while dropped < limit do
  local lowest = redis.call('ZRANGE', unsettled_key, 0, 0)[1]
  if not lowest then
    break
  end
  local state = redis.call('HGET', tx_prefix .. lowest, 'state')
  -- A state this script does not know (a newer gateway's) keeps the watermark where it is.
  if state and not settled[state] then
    break
  end
  redis.call('ZREM', unsettled_key, lowest)
  dropped = dropped + 1
end

local trimmed = 0
local oldest = redis.call('ZRANGE', recent_key, 0, limit - 1)
for _, tx_id in ipairs(oldest) do
  if redis.call('EXISTS', tx_prefix .. tx_id) == 0 then
    redis.call('ZREM', recent_key, tx_id)
    trimmed = trimmed + 1
  end
end
for _, bucket in ipairs(redis.call('ZRANGE', visible_index, 0, limit - 1)) do
  if redis.call('EXISTS', visible_prefix .. bucket) == 0 then
    local gone = tonumber(redis.call('HGET', visible_counts, bucket) or '0')
    redis.call('HDEL', visible_counts, bucket)
    redis.call('HINCRBY', visible_counts, 'total', -gone)
    redis.call('ZREM', visible_index, bucket)
    trimmed = trimmed + 1
  end
end

local watermark
local lowest = redis.call('ZRANGE', unsettled_key, 0, 0, 'WITHSCORES')
if lowest[2] then
  watermark = tonumber(lowest[2])
else
  watermark = tonumber(redis.call('GET', seq_key) or '0') + 1
end
return {watermark, dropped, trimmed}
