-- Atomic accept of one transaction: idempotency, unique claims, sequence number,
-- dependencies, stream append, state, overlay layers. Either all of it happens or nothing.
-- ARGV: prefix, tx_id, envelope json, plan json, idempotency key (or ''), idempotency
--       record json, idempotency ttl seconds, now (ms)
local prefix, tx_id, envelope, plan_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local idem_key, idem_record, idem_ttl, now_ms = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local plan = cjson.decode(plan_json)

if idem_key ~= '' then
  local prior = redis.call('GET', idem_key)
  if prior then
    return {'duplicate', prior}
  end
end

local conflict = unique_conflict(prefix, plan)
if conflict then
  return conflict
end

local seq = redis.call('INCR', prefix .. ':seq')

-- A transaction depends on the newest pending transaction that wrote any record it writes
-- or references; that one depends on older ones in turn, so the chain orders them all.
local deps, seen = {}, {}
local function depend_on(model, pk)
  local layers = redis.call('HGET', prefix .. ':ov:' .. model, pk)
  if layers then
    local newest = string.match(layers, '([^\n]+)$')
    local dep = string.sub(newest, 1, 36)
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
  'XADD', prefix .. ':stream', '*', 'tx', tx_id, 'seq', seq, 'deps', deps_csv, 'env', envelope)

for _, step in ipairs(plan.steps) do
  add_layer(prefix, step.model, step.pk,
    tx_id .. '|' .. seq .. '|' .. step.op .. '|' .. step.layer, seq)
  file_entries(prefix, step.model, step.pk, step.index, step.unique)
end

redis.call('HSET', prefix .. ':tx:' .. tx_id,
  'state', 'buffered', 'seq', seq, 'created_at', now_ms, 'stream_id', stream_id,
  'touched', plan.touched, 'deps', deps_csv, 'attempts', 0)
redis.call('ZADD', prefix .. ':recent', seq, tx_id)
if idem_key ~= '' then
  redis.call('SET', idem_key, idem_record, 'EX', idem_ttl)
end
count(prefix, 'accepted', 1)
publish(prefix, {tx_id = tx_id, state = 'buffered', seq = seq, at = tonumber(now_ms)})
return {'accepted', seq, stream_id, deps_csv}
