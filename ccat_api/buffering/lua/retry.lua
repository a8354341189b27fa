-- Put a dead letter back in the stream, at its end with a new seq (so overlay layers fold in
-- the order main will apply them), keep its dependencies, and restore its overlay layers so
-- reads show it again. Refused if a buffered record now holds one of its unique values.
-- KEYS: the transaction's status hash, seq, stream, recent, dead, stats, unsettled
-- ARGV: events channel, overlay families (5), tx_id, now (ms), plan json (as for accept)
local txkey, seq_key, stream_key = KEYS[1], KEYS[2], KEYS[3]
local recent_key, dead_key, stats_key, unsettled_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local channel, overlay = ARGV[1], overlay_families(unpack(ARGV, 2, 6))
local tx_id, now_ms = ARGV[7], ARGV[8]
local plan = cjson.decode(ARGV[9])
local state = redis.call('HGET', txkey, 'state')
if state ~= 'failed' then
  return {'not_failed', state or 'missing'}
end
local seq, conflict = next_seq_unless_conflict(overlay, plan, seq_key)
if conflict then
  return conflict
end
local deps = redis.call('HGET', txkey, 'deps') or ''
local envelope = redis.call('HGET', txkey, 'envelope')
local stream_id = redis.call('XADD', stream_key, '*',
  'tx', tx_id, 'seq', seq, 'deps', deps, 'env', envelope)
for _, step in ipairs(plan.steps) do
  add_layer(overlay, step.model, step.pk,
    tx_id .. '|' .. seq .. '|' .. step.op .. '|' .. step.layer, seq)
  file_entries(overlay, step.model, step.pk, step.index, step.unique)
end
redis.call('HSET', txkey, 'state', 'buffered', 'stream_id', stream_id, 'retried_at', now_ms,
  'seq', seq)
redis.call('ZADD', recent_key, seq, tx_id)
redis.call('ZADD', unsettled_key, seq, tx_id)
redis.call('HDEL', txkey, 'error', 'error_code', 'failed_at', 'envelope', 'conflict')
redis.call('ZREM', dead_key, tx_id)
count(stats_key, 'retried', 1)
publish(channel, {tx_id = tx_id, state = 'buffered', seq = seq, retried = true,
  at = tonumber(now_ms)})
return {'retried', stream_id}
