-- Record a replayed batch: applied transactions wait for the replica (scored by commit LSN),
-- failed ones become dead letters (envelope kept, overlay layers dropped), and every entry is
-- acknowledged and removed from the stream, all in one step: a crash before this script
-- leaves the entries pending, and the replay then finds them in applied_transactions.
-- Held transactions (a dependency is still waiting behind them) move to the stream's end.
-- ARGV: prefix, group, now (ms), commit lsn, results json, batch duration on main (ms)
--   results = {applied = {{tx_id, stream_id}...}, failed = {{tx_id, stream_id, code, error}...},
--              held = {{tx_id, stream_id}...}}
local prefix, group, now_ms, lsn = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local results = cjson.decode(ARGV[5])
local batch_ms = tonumber(ARGV[6] or '0')
local stream = prefix .. ':stream'

local events = {}
count(prefix, 'applied', #results.applied)
count(prefix, 'failed', #results.failed)
if #results.applied + #results.failed > 0 then
  count(prefix, 'batches', 1)
  count(prefix, 'batch_transactions', #results.applied + #results.failed)
  count(prefix, 'batch_ms', math.floor(batch_ms))
end
if #results.applied > 0 then
  redis.call('HSET', prefix .. ':stats', 'main_lsn', lsn)
end

for _, item in ipairs(results.applied) do
  local tx_id, stream_id = item[1], item[2]
  redis.call('HSET', prefix .. ':tx:' .. tx_id,
    'state', 'applied', 'applied_at', now_ms, 'lsn', lsn)
  redis.call('HDEL', prefix .. ':tx:' .. tx_id, 'last_error')
  redis.call('ZADD', prefix .. ':applied', lsn, tx_id)
  redis.call('XACK', stream, group, stream_id)
  redis.call('XDEL', stream, stream_id)
  table.insert(events, {tx_id = tx_id, state = 'applied', lsn = tonumber(lsn),
    at = tonumber(now_ms)})
end

for _, item in ipairs(results.failed) do
  local tx_id, stream_id, code, err = item[1], item[2], item[3], item[4]
  local txkey = prefix .. ':tx:' .. tx_id
  local entry = redis.call('XRANGE', stream, stream_id, stream_id)
  local envelope = ''
  if entry[1] then
    local fields = entry[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'env' then
        envelope = fields[i + 1]
      end
    end
  end
  if envelope ~= '' then
    redis.call('HSET', txkey, 'envelope', envelope)
  end
  redis.call('HSET', txkey, 'state', 'failed', 'failed_at', now_ms,
    'error_code', code, 'error', err)
  local seq = redis.call('HGET', txkey, 'seq') or '0'
  redis.call('ZADD', prefix .. ':dead', seq, tx_id)
  drop_layers(prefix, tx_id, redis.call('HGET', txkey, 'touched') or '', 0)
  redis.call('XACK', stream, group, stream_id)
  redis.call('XDEL', stream, stream_id)
  table.insert(events, {tx_id = tx_id, state = 'failed', code = code, error = err,
    at = tonumber(now_ms)})
end
for _, item in ipairs(results.held) do
  local tx_id, stream_id = item[1], item[2]
  local entry = redis.call('XRANGE', stream, stream_id, stream_id)
  if entry[1] then
    local moved = redis.call('XADD', stream, '*', unpack(entry[1][2]))
    redis.call('HSET', prefix .. ':tx:' .. tx_id, 'stream_id', moved)
  end
  redis.call('XACK', stream, group, stream_id)
  redis.call('XDEL', stream, stream_id)
end
publish_all(prefix, events)
return #results.applied + #results.failed + #results.held
