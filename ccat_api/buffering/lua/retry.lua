-- Put a dead letter back in the stream, at its end with a new seq (so overlay layers fold in
-- the order main will apply them), keep its dependencies, and restore its overlay layers so
-- reads show it again. Refused if a buffered record now holds one of its unique values.
-- ARGV: prefix, tx_id, now (ms), plan json (as for accept)
local prefix, tx_id, now_ms = ARGV[1], ARGV[2], ARGV[3]
local plan = cjson.decode(ARGV[4])
local txkey = prefix .. ':tx:' .. tx_id
local state = redis.call('HGET', txkey, 'state')
if state ~= 'failed' then
  return {'not_failed', state or 'missing'}
end
local conflict = unique_conflict(prefix, plan)
if conflict then
  return conflict
end
local seq = redis.call('INCR', prefix .. ':seq')
local deps = redis.call('HGET', txkey, 'deps') or ''
local envelope = redis.call('HGET', txkey, 'envelope')
local stream_id = redis.call('XADD', prefix .. ':stream', '*',
  'tx', tx_id, 'seq', seq, 'deps', deps, 'env', envelope)
for _, step in ipairs(plan.steps) do
  add_layer(prefix, step.model, step.pk,
    tx_id .. '|' .. seq .. '|' .. step.op .. '|' .. step.layer, seq)
  file_entries(prefix, step.model, step.pk, step.index, step.unique)
end
redis.call('HSET', txkey, 'state', 'buffered', 'stream_id', stream_id, 'retried_at', now_ms,
  'seq', seq)
redis.call('ZADD', prefix .. ':recent', seq, tx_id)
redis.call('HDEL', txkey, 'error', 'error_code', 'failed_at', 'envelope')
redis.call('ZREM', prefix .. ':dead', tx_id)
count(prefix, 'retried', 1)
publish(prefix, {tx_id = tx_id, state = 'buffered', seq = seq, retried = true,
  at = tonumber(now_ms)})
return {'retried', stream_id}
