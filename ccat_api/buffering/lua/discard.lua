-- Give up on a dead letter for good; its status stays readable for the retention period.
-- ARGV: prefix, tx_id, now (ms), status ttl (s)
local prefix, tx_id, now_ms, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local txkey = prefix .. ':tx:' .. tx_id
local state = redis.call('HGET', txkey, 'state')
if state ~= 'failed' then
  return {'not_failed', state or 'missing'}
end
redis.call('HSET', txkey, 'state', 'discarded', 'discarded_at', now_ms)
redis.call('EXPIRE', txkey, ttl)
redis.call('ZREM', prefix .. ':dead', tx_id)
count(prefix, 'discarded', 1)
publish(prefix, {tx_id = tx_id, state = 'discarded', at = tonumber(now_ms)})
return {'discarded'}
