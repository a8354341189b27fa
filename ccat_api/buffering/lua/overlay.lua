-- Shared by the scripts: overlay layers, counters, events. Key names come from keys.py.

-- The overlay's key families, as SiteKeys.overlay_families passes them: a record's layers
-- and filed entries are under a family prefix and its model; an index set or unique claim
-- adds the separator and the entry ("column=value").
local function overlay_families(record, filed, index, unique, separator)
  return {record = record, filed = filed, index = index, unique = unique, separator = separator}
end

local function index_key(overlay, model, entry)
  return overlay.index .. model .. overlay.separator .. entry
end

local function unique_key(overlay, model, entry)
  return overlay.unique .. model .. overlay.separator .. entry
end

-- A layer's transaction: the line up to its first '|' (tx ids never hold one).
local function layer_tx(line)
  return string.match(line, '^[^|]+')
end

-- Removes a transaction's layers from the overlay.
-- Layers are lines "tx_id|seq|op|json"; a record with no layers left is dropped together
-- with its index entries. Its unique claims are deleted when the transaction failed (the
-- value is free again) but only expire after claim_grace_ms when it became visible: a
-- concurrent accept may have checked the replica just before the replica showed the
-- record, and must still find the claim.
local function drop_layers(overlay, tx_id, touched, claim_grace_ms)
  for ref in string.gmatch(touched, '%S+') do
    local model, pk = string.match(ref, '^([^:]+):(.+)$')
    local okey = overlay.record .. model
    local current = redis.call('HGET', okey, pk)
    if current then
      local kept = {}
      for line in string.gmatch(current, '[^\n]+') do
        if layer_tx(line) ~= tx_id then
          table.insert(kept, line)
        end
      end
      if #kept == 0 then
        redis.call('HDEL', okey, pk)
        local xkey = overlay.filed .. model
        local filed = redis.call('HGET', xkey, pk)
        if filed then
          for entry in string.gmatch(filed, '%S+') do
            local kind, value = string.sub(entry, 1, 1), string.sub(entry, 3)
            if kind == 'i' then
              redis.call('SREM', index_key(overlay, model, value), pk)
            elseif kind == 'o' then
              redis.call('ZREM', index_key(overlay, model, value), pk)
            else
              local ukey = unique_key(overlay, model, value)
              if redis.call('GET', ukey) == pk then
                if claim_grace_ms > 0 then
                  redis.call('PEXPIRE', ukey, claim_grace_ms)
                else
                  redis.call('DEL', ukey)
                end
              end
            end
          end
          redis.call('HDEL', xkey, pk)
        end
      else
        redis.call('HSET', okey, pk, table.concat(kept, '\n'))
      end
    end
  end
end

-- Insert a layer line keeping the record's lines ordered by seq (a retried dead letter
-- re-enters with its original seq, possibly behind newer layers).
local function add_layer(overlay, model, pk, line, seq)
  local okey = overlay.record .. model
  local current = redis.call('HGET', okey, pk)
  if not current then
    redis.call('HSET', okey, pk, line)
    return
  end
  local lines = {}
  local placed = false
  for existing in string.gmatch(current, '[^\n]+') do
    local existing_seq = tonumber(string.match(existing, '^[^|]+|(%d+)|'))
    if not placed and existing_seq > seq then
      table.insert(lines, line)
      placed = true
    end
    table.insert(lines, existing)
  end
  if not placed then
    table.insert(lines, line)
  end
  redis.call('HSET', okey, pk, table.concat(lines, '\n'))
end

-- Index entries are "column=value" (a set of pks), the fold marker (a set of the pks whose
-- layers must be folded to be read, keys.py's FOLD_ENTRY), or "~by=column@score" (a sorted
-- set of plain inserts by that column's value, filed without the score).
local function file_entries(overlay, model, pk, index_entries, unique_entries)
  local xkey = overlay.filed .. model
  local filed = redis.call('HGET', xkey, pk) or ' '
  local changed = false
  for _, entry in ipairs(index_entries) do
    local tag, name, score = 'i:', entry, nil
    if string.sub(entry, 1, 1) == '~' then
      local ordered, at = string.match(entry, '^(.+)@(%-?[%d.e+]+)$')
      if ordered then
        tag, name, score = 'o:', ordered, at
      end
    end
    if score then
      redis.call('ZADD', index_key(overlay, model, name), score, pk)
    else
      redis.call('SADD', index_key(overlay, model, name), pk)
    end
    if not string.find(filed, ' ' .. tag .. name .. ' ', 1, true) then
      filed = filed .. tag .. name .. ' '
      changed = true
    end
  end
  for _, entry in ipairs(unique_entries) do
    redis.call('SET', unique_key(overlay, model, entry), pk)
    if not string.find(filed, ' u:' .. entry .. ' ', 1, true) then
      filed = filed .. 'u:' .. entry .. ' '
      changed = true
    end
  end
  if changed then
    redis.call('HSET', xkey, pk, filed)
  end
end

-- A unique value of the plan already held by another buffered record, as a conflict reply.
local function unique_conflict(overlay, plan)
  for _, step in ipairs(plan.steps) do
    for _, entry in ipairs(step.unique) do
      local holder = redis.call('GET', unique_key(overlay, step.model, entry))
      if holder and holder ~= step.pk then
        return {'conflict', step.model, entry}
      end
    end
  end
  return nil
end

-- Accept and retry both take the site's next sequence number only once no unique value the
-- transaction claims is held by another pending record: the number, or the conflict to answer.
local function next_seq_unless_conflict(overlay, plan, seq_key)
  local conflict = unique_conflict(overlay, plan)
  if conflict then
    return nil, conflict
  end
  return redis.call('INCR', seq_key), nil
end

local function publish(channel, event)
  redis.call('PUBLISH', channel, cjson.encode(event))
end

-- A replayed batch settles thousands of transactions at once: one message carries all their
-- events (a JSON array), so monitors get one frame per batch rather than one per row.
local function publish_all(channel, events)
  if #events == 1 then
    publish(channel, events[1])
  elseif #events > 1 then
    redis.call('PUBLISH', channel, cjson.encode(events))
  end
end

-- Site-wide counters for metrics (accepted, applied, failed, visible, batches...): kept in
-- Redis, in the same atomic step as the change they count, so every gateway worker reports
-- the same totals and a restart of any process loses none of them.
local function count(stats_key, field, n)
  if n > 0 then
    redis.call('HINCRBY', stats_key, field, n)
  end
end
