-- What one list page needs from the overlay, read at one instant (read only):
-- 1. how many plain inserts match the filter (every index set named, not marked to fold);
-- 2. the first `wanted` of them in the page's order (and any tied with the last), walking
--    the column's sorted set; or all of them when there are few, or the walk runs long;
-- 3. every record marked to fold that the filter may name, with its layers;
-- 4. the records of transactions the processor has been handed (its pending list) or that
--    are applied and not yet visible: only these can already be replica rows, so only these
--    are kept out of the replica's side; and the group's last delivered id, which the
--    reader compares after its replica queries (a delivery in between means: read again).
-- KEYS: records hash, fold set, sorted set by the order column, stream, applied,
--       then the filter's index sets (none: every record of the model)
-- ARGV: descending ('1'/'0'), wanted, few (read all at or below), walk limit, consumer group,
--       status hash prefix, model, most transactions in flight to look at
local record_key, fold_key, order_key, stream_key, applied_key = unpack(KEYS, 1, 5)
local sets = {unpack(KEYS, 6)}
local descending, wanted = ARGV[1] == '1', tonumber(ARGV[2])
local few, walk_limit, group = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local tx_prefix, model, most_in_flight = ARGV[6], ARGV[7], tonumber(ARGV[8])

local function named(pk)
  for _, set in ipairs(sets) do
    if redis.call('SISMEMBER', set, pk) == 0 then
      return false
    end
  end
  return true
end

local matching, folded
if #sets == 0 then
  matching = redis.call('HLEN', record_key)
  folded = redis.call('SMEMBERS', fold_key)
elseif #sets == 1 then
  -- SINTERCARD walks every member even of a single set; SCARD is O(1).
  matching = redis.call('SCARD', sets[1])
  folded = redis.call('SINTER', fold_key, sets[1])
else
  matching = redis.call('SINTERCARD', #sets, unpack(sets))
  folded = redis.call('SINTER', fold_key, unpack(sets))
end
local plain_total = matching - #folded

local mode, plain = 'walk', {}
local function take_all()
  mode, plain = 'all', {}
  local members = #sets == 0 and redis.call('HKEYS', record_key) or redis.call('SINTER', unpack(sets))
  for _, pk in ipairs(members) do
    if redis.call('SISMEMBER', fold_key, pk) == 0 then
      table.insert(plain, pk)
    end
  end
end

-- Every plain insert is in the sorted set unless it was buffered before the sets existed;
-- then walking could pass one by, so read them all.
local unordered = redis.call('HLEN', record_key) - redis.call('SCARD', fold_key)
  - (redis.call('ZCARD', order_key) - redis.call('ZINTERCARD', 2, order_key, fold_key))
if plain_total <= few or unordered > 0 then
  take_all()
else
  local rank, chunk, scanned, last = 0, math.max(wanted, 64), 0, nil
  local done = false
  while not done do
    local window
    if descending then
      window = redis.call('ZRANGE', order_key, rank, rank + chunk - 1, 'REV', 'WITHSCORES')
    else
      window = redis.call('ZRANGE', order_key, rank, rank + chunk - 1, 'WITHSCORES')
    end
    if #window == 0 then
      break
    end
    for i = 1, #window, 2 do
      local pk, score = window[i], window[i + 1]
      if #plain >= wanted and score ~= last then
        done = true
        break
      end
      if named(pk) and redis.call('SISMEMBER', fold_key, pk) == 0 then
        table.insert(plain, pk)
        last = score
      end
    end
    rank = rank + chunk
    scanned = scanned + #window / 2
    if not done and scanned >= walk_limit then
      take_all()
      done = true
    end
  end
end

local function layers_of(pks)
  if #pks == 0 then
    return {}
  end
  return redis.call('HMGET', record_key, unpack(pks))
end

-- In flight: handed to the processor (pending) or applied, not yet visible.
local in_flight_tx = redis.call('ZRANGE', applied_key, 0, most_in_flight)
local delivered = ''
local groups = redis.pcall('XINFO', 'GROUPS', stream_key)
if type(groups) == 'table' and not groups.err then
  for _, info in ipairs(groups) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields['name'] == group then
      delivered = fields['last-delivered-id']
      local pending = redis.call('XPENDING', stream_key, group, '-', '+', most_in_flight + 1)
      for _, entry in ipairs(pending) do
        local found = redis.call('XRANGE', stream_key, entry[1], entry[1])
        if found[1] then
          local entry_fields = found[1][2]
          for i = 1, #entry_fields, 2 do
            if entry_fields[i] == 'tx' then
              table.insert(in_flight_tx, entry_fields[i + 1])
            end
          end
        end
      end
    end
  end
end
if #in_flight_tx > most_in_flight then
  return {'busy'}
end
local in_flight = {}
for _, tx_id in ipairs(in_flight_tx) do
  local touched = redis.call('HGET', tx_prefix .. tx_id, 'touched') or ''
  for ref in string.gmatch(touched, '%S+') do
    local ref_model, pk = string.match(ref, '^([^:]+):(.+)$')
    if ref_model == model then
      table.insert(in_flight, pk)
    end
  end
end

return {mode, plain_total, plain, layers_of(plain), folded, layers_of(folded), in_flight,
  delivered}
