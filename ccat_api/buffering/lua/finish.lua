-- Record a replayed batch: applied transactions wait for the replica (scored by commit LSN),
-- failed ones become dead letters (envelope kept, overlay layers dropped), and every entry is
-- acknowledged and removed from the stream, each transaction in one step: a crash before this
-- script leaves the entries pending, and the replay then finds them in applied_transactions.
-- A large batch is recorded in several calls (a chunk each, in order), so Redis answers the
-- gateway's accepts in between; only the first says the batch's size for the statistics.
-- Held transactions (a dependency is still waiting behind them) move to the stream's end.
-- With keep = '1' (main has standbys that may not have the commit yet) each applied
-- transaction's envelope stays in its status hash and the tx_id in undurable until they do.
-- KEYS: stream, applied, dead, stats, undurable
-- ARGV: events channel, overlay families (5), status hash prefix, group, now (ms),
--       commit lsn, results json, batch duration on main (ms), keep,
--       transactions the batch counts in the statistics (absent: this call's; 0: none)
--   results = {applied = {{tx_id, stream_id}...},
--              failed = {{tx_id, stream_id, code, error[, conflict json]}...},
--              held = {{tx_id, stream_id}...}}
local stream_key, applied_key, dead_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel, overlay = ARGV[1], overlay_families(unpack(ARGV, 2, 6))
local tx_prefix, group, now_ms, lsn = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local results = cjson.decode(ARGV[11])
local batch_ms = tonumber(ARGV[12] or '0')
local undurable_key, keep = KEYS[5], ARGV[13] == '1'
local batch_size = tonumber(ARGV[14] or '') or (#results.applied + #results.failed)

local events = {}
count(stats_key, 'applied', #results.applied)
count(stats_key, 'failed', #results.failed)
if batch_size > 0 then
  count(stats_key, 'batches', 1)
  count(stats_key, 'batch_transactions', batch_size)
  count(stats_key, 'batch_ms', math.floor(batch_ms))
end
if #results.applied > 0 then
  redis.call('HSET', stats_key, 'main_lsn', lsn)
end

-- One ZADD, XACK and XDEL for all the applied (at the end, after keep read their entries):
-- a command per transaction costs Redis as much again, and its AOF an entry each.
local scored, acked = {}, {}
for _, item in ipairs(results.applied) do
  local tx_id, stream_id = item[1], item[2]
  redis.call('HSET', tx_prefix .. tx_id,
    'state', 'applied', 'applied_at', now_ms, 'lsn', lsn)
  redis.call('HDEL', tx_prefix .. tx_id, 'last_error')
  table.insert(scored, lsn)
  table.insert(scored, tx_id)
  table.insert(acked, stream_id)
  if keep then
    local entry = redis.call('XRANGE', stream_key, stream_id, stream_id)
    if entry[1] then
      local fields, kept = entry[1][2], {}
      for i = 1, #fields, 2 do
        if fields[i] == 'env' or fields[i] == 'seq' or fields[i] == 'deps' then
          table.insert(kept, 'kept_' .. fields[i])
          table.insert(kept, fields[i + 1])
        end
      end
      if #kept > 0 then
        redis.call('HSET', tx_prefix .. tx_id, unpack(kept))
      end
    end
    redis.call('ZADD', undurable_key, lsn, tx_id)
  end
  table.insert(events, {tx_id = tx_id, state = 'applied', lsn = tonumber(lsn),
    at = tonumber(now_ms)})
end
if #acked > 0 then
  redis.call('ZADD', applied_key, unpack(scored))
  redis.call('XACK', stream_key, group, unpack(acked))
  redis.call('XDEL', stream_key, unpack(acked))
end

for _, item in ipairs(results.failed) do
  local tx_id, stream_id, code, err = item[1], item[2], item[3], item[4]
  local txkey = tx_prefix .. tx_id
  local entry = redis.call('XRANGE', stream_key, stream_id, stream_id)
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
  if item[5] then
    -- A conflict: main's row and the site's change, for the operator who resolves it.
    redis.call('HSET', txkey, 'conflict', item[5])
  end
  local seq = redis.call('HGET', txkey, 'seq') or '0'
  redis.call('ZADD', dead_key, seq, tx_id)
  drop_layers(overlay, tx_id, redis.call('HGET', txkey, 'touched') or '', 0)
  redis.call('XACK', stream_key, group, stream_id)
  redis.call('XDEL', stream_key, stream_id)
  table.insert(events, {tx_id = tx_id, state = 'failed', code = code, error = err,
    at = tonumber(now_ms)})
end
for _, item in ipairs(results.held) do
  local tx_id, stream_id = item[1], item[2]
  local entry = redis.call('XRANGE', stream_key, stream_id, stream_id)
  if entry[1] then
    local moved = redis.call('XADD', stream_key, '*', unpack(entry[1][2]))
    redis.call('HSET', tx_prefix .. tx_id, 'stream_id', moved)
  end
  redis.call('XACK', stream_key, group, stream_id)
  redis.call('XDEL', stream_key, stream_id)
end
publish_all(channel, events)
return #results.applied + #results.failed + #results.held
