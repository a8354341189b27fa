-- Atomic accept of one transaction: idempotency, unique claims, sequence number,
-- dependencies, stream append, state, overlay layers. Either all of it happens or nothing.
-- KEYS: the transaction's status hash, seq, stream, recent, stats, unsettled, its visible
--       status bucket, and the idempotency key when the request has one
-- ARGV: events channel, overlay families (5), tx_id, envelope json, plan json, idempotency
--       record json, idempotency ttl seconds, now (ms)
local txkey, seq_key, stream_key, recent_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local stats_key, unsettled_key, visible_key, idem_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local channel, overlay = ARGV[1], overlay_families(unpack(ARGV, 2, 6))
local tx_id, envelope, plan_json = ARGV[7], ARGV[8], ARGV[9]
local idem_record, idem_ttl, now_ms = ARGV[10], tonumber(ARGV[11]), ARGV[12]
local plan = cjson.decode(plan_json)

if idem_key then
  local prior = redis.call('GET', idem_key)
  if prior then
    return {'duplicate', prior}
  end
end

-- The same tx_id again is the same call resent: the Redis client retries a command whose reply
-- was lost with its connection. Answer as the first call did, or the transaction would be
-- buffered twice (two stream entries, two sequence numbers, its overlay layers doubled).
if redis.call('EXISTS', txkey) == 1 then
  local first = redis.call('HMGET', txkey, 'seq', 'stream_id', 'deps')
  return {'accepted', tonumber(first[1]), first[2] or '', first[3] or ''}
end
local settled_seq, settled_deps = visible_seq_deps(visible_key, tx_id)
if settled_seq then
  return {'accepted', settled_seq, '', settled_deps}
end

local seq, conflict = next_seq_unless_conflict(overlay, plan, seq_key)
if conflict then
  return conflict
end

-- A transaction depends on the newest pending transaction that wrote any record it writes
-- or references; that one depends on older ones in turn, so the chain orders them all.
local deps, seen = {}, {}
local function depend_on(model, pk)
  local layers = redis.call('HGET', overlay.record .. model, pk)
  if layers then
    local dep = layer_tx(string.match(layers, '([^\n]+)$'))
    if dep ~= tx_id and not seen[dep] then
      seen[dep] = true
      table.insert(deps, dep)
    end
  end
end
for _, step in ipairs(plan.steps) do
  depend_on(step.model, step.pk)
  for _, ref in ipairs(step.refs) do
    depend_on(ref[1], ref[2])
  end
end
local deps_csv = table.concat(deps, ',')

local stream_id = redis.call(
  'XADD', stream_key, '*', 'tx', tx_id, 'seq', seq, 'deps', deps_csv, 'env', envelope)

for _, step in ipairs(plan.steps) do
  add_layer(overlay, step.model, step.pk,
    tx_id .. '|' .. seq .. '|' .. step.op .. '|' .. step.layer, seq)
  file_entries(overlay, step.model, step.pk, step.index, step.unique)
end

-- No attempts yet and no dependencies are absent fields (read as 0 and none): a status hash
-- is kept for days, and every field costs memory per transaction.
local status = {'state', 'buffered', 'seq', seq, 'created_at', now_ms, 'stream_id', stream_id,
  'touched', plan.touched}
if deps_csv ~= '' then
  table.insert(status, 'deps')
  table.insert(status, deps_csv)
end
redis.call('HSET', txkey, unpack(status))
redis.call('ZADD', recent_key, seq, tx_id)
redis.call('ZADD', unsettled_key, seq, tx_id)
if idem_key then
  redis.call('SET', idem_key, idem_record, 'EX', idem_ttl)
end
count(stats_key, 'accepted', 1)
publish(channel, {tx_id = tx_id, state = 'buffered', seq = seq, at = tonumber(now_ms)})
return {'accepted', seq, stream_id, deps_csv}
