-- Shared by the scripts: the compact status of a visible transaction (keys.py: P:visible).
-- A status hash of its own costs Redis about 310 B and a member of the recent index 130 B
-- more, for the days a status is kept; one field of a bucket shared by the transactions of
-- the same second costs about its own bytes.

-- The second a UUIDv7 tx_id was made in (its first 48 bits are Unix ms): its bucket.
local function tx_bucket(tx_id, bucket_ms)
  local ms = tonumber(string.sub(tx_id, 1, 8) .. string.sub(tx_id, 10, 13), 16)
  return math.floor(ms / bucket_ms)
end

-- What a visible status keeps, in this order (the first 7), then what horizon.py keeps
-- besides until main's standbys have the commit: read in one HMGET.
local SETTLED_FIELDS = {'seq', 'created_at', 'applied_at', 'lsn', 'attempts', 'deps', 'touched',
  'kept_env', 'kept_seq', 'kept_deps'}
local FIRST_KEPT = 8

-- "seq|created|applied|visible|lsn|attempts|deps|touched" (ledger.py reads it): created in ms
-- after the bucket's start, applied and visible in ms after created (a few digits rather than
-- thirteen each), deps and touched as the status hash holds them.
local function compact_status(status, start_ms, visible_ms)
  local created = tonumber(status[2]) or start_ms
  local applied = tonumber(status[3])
  return table.concat({
    status[1], created - start_ms, applied and (applied - created) or '',
    visible_ms - created, status[4] or '', status[5] or '', status[6] or '', status[7] or ''
  }, '|')
end

-- The keys and settings of the buckets, as the scripts pass them (prefix, index, counts,
-- bucket width in ms, ttl in s).
local function visible_families(prefix, index, counts, bucket_ms, ttl)
  return {prefix = prefix, index = index, counts = counts, bucket_ms = tonumber(bucket_ms),
    ttl = tonumber(ttl)}
end

-- Folds the status hashes of transactions that just became visible into their buckets; a
-- hash keeps only its kept_* fields, if it has them (horizon.py still needs them).
local function settle_visible(tx_prefix, visible, tx_ids, now_ms)
  local buckets, order = {}, {}
  for _, tx_id in ipairs(tx_ids) do
    local txkey = tx_prefix .. tx_id
    local status = redis.call('HMGET', txkey, unpack(SETTLED_FIELDS))
    if status[1] then
      local bucket = tx_bucket(tx_id, visible.bucket_ms)
      if not buckets[bucket] then
        buckets[bucket] = {}
        table.insert(order, bucket)
      end
      table.insert(buckets[bucket], tx_id)
      table.insert(buckets[bucket],
        compact_status(status, bucket * visible.bucket_ms, tonumber(now_ms)))
      redis.call('DEL', txkey)
      local left = {}
      for i = FIRST_KEPT, #SETTLED_FIELDS do
        if status[i] then
          table.insert(left, SETTLED_FIELDS[i])
          table.insert(left, status[i])
        end
      end
      if #left > 0 then
        redis.call('HSET', txkey, unpack(left))
      end
    elseif redis.call('EXISTS', txkey) == 1 then
      -- Not a status accept.lua wrote: marked, and kept for the retention period as it is.
      redis.call('HSET', txkey, 'state', 'visible', 'visible_at', now_ms)
      redis.call('EXPIRE', txkey, visible.ttl)
    end
  end
  for _, bucket in ipairs(order) do
    local key = visible.prefix .. bucket
    local added = redis.call('HSET', key, unpack(buckets[bucket]))
    redis.call('EXPIRE', key, visible.ttl)
    if added > 0 then
      redis.call('ZADD', visible.index, bucket, bucket)
      redis.call('HINCRBY', visible.counts, bucket, added)
      redis.call('HINCRBY', visible.counts, 'total', added)
    end
  end
end

-- A visible transaction's seq and deps from its bucket, or nil.
local function visible_seq_deps(visible_key, tx_id)
  local line = redis.call('HGET', visible_key, tx_id)
  if not line then
    return nil
  end
  local seq, deps = string.match(line, '^([^|]*)|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)|')
  return tonumber(seq), deps or ''
end
