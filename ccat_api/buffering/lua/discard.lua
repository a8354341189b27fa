-- Give up on a dead letter for good; its status stays readable for the retention period.
-- KEYS: the transaction's status hash, dead, stats
-- ARGV: events channel, tx_id, now (ms), status ttl (s)
local txkey, dead_key, stats_key = KEYS[1], KEYS[2], KEYS[3]
local channel, tx_id, now_ms, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local state = redis.call('HGET', txkey, 'state')
if state ~= 'failed' then
  return {'not_failed', state or 'missing'}
end
redis.call('HSET', txkey, 'state', 'discarded', 'discarded_at', now_ms)
redis.call('EXPIRE', txkey, ttl)
redis.call('ZREM', dead_key, tx_id)
count(stats_key, 'discarded', 1)
publish(channel, {tx_id = tx_id, state = 'discarded', at = tonumber(now_ms)})
return {'discarded'}
