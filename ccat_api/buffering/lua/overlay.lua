-- Shared by the scripts that remove a transaction's layers from the overlay.
-- Layers are lines "tx_id|seq|op|json"; a record with no layers left is dropped together
-- with its index entries. Its unique claims are deleted when the transaction failed (the
-- value is free again) but only expire after claim_grace_ms when it became visible: a
-- concurrent accept may have checked the replica just before the replica showed the
-- record, and must still find the claim.
local function drop_layers(prefix, tx_id, touched, claim_grace_ms)
  for ref in string.gmatch(touched, '%S+') do
    local model, pk = string.match(ref, '^([^:]+):(.+)$')
    local okey = prefix .. ':ov:' .. model
    local current = redis.call('HGET', okey, pk)
    if current then
      local kept = {}
      for line in string.gmatch(current, '[^\n]+') do
        if string.sub(line, 1, 36) ~= tx_id then
          table.insert(kept, line)
        end
      end
      if #kept == 0 then
        redis.call('HDEL', okey, pk)
        local xkey = prefix .. ':ovx:' .. model
        local filed = redis.call('HGET', xkey, pk)
        if filed then
          for entry in string.gmatch(filed, '%S+') do
            local kind, value = string.sub(entry, 1, 1), string.sub(entry, 3)
            if kind == 'i' then
              redis.call('SREM', prefix .. ':ovi:' .. model .. ':' .. value, pk)
            else
              local ukey = prefix .. ':ovu:' .. model .. ':' .. value
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
local function add_layer(prefix, model, pk, line, seq)
  local okey = prefix .. ':ov:' .. model
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

local function file_entries(prefix, model, pk, index_entries, unique_entries)
  local xkey = prefix .. ':ovx:' .. model
  local filed = redis.call('HGET', xkey, pk) or ' '
  local changed = false
  for _, entry in ipairs(index_entries) do
    redis.call('SADD', prefix .. ':ovi:' .. model .. ':' .. entry, pk)
    if not string.find(filed, ' i:' .. entry .. ' ', 1, true) then
      filed = filed .. 'i:' .. entry .. ' '
      changed = true
    end
  end
  for _, entry in ipairs(unique_entries) do
    redis.call('SET', prefix .. ':ovu:' .. model .. ':' .. entry, pk)
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
local function unique_conflict(prefix, plan)
  for _, step in ipairs(plan.steps) do
    for _, entry in ipairs(step.unique) do
      local holder = redis.call('GET', prefix .. ':ovu:' .. step.model .. ':' .. entry)
      if holder and holder ~= step.pk then
        return {'conflict', step.model, entry}
      end
    end
  end
  return nil
end

local function publish(prefix, event)
  redis.call('PUBLISH', prefix .. ':events', cjson.encode(event))
end

-- A replayed batch settles thousands of transactions at once: one message carries all their
-- events (a JSON array), so monitors get one frame per batch rather than one per row.
local function publish_all(prefix, events)
  if #events == 1 then
    publish(prefix, events[1])
  elseif #events > 1 then
    redis.call('PUBLISH', prefix .. ':events', cjson.encode(events))
  end
end

-- Site-wide counters for metrics (accepted, applied, failed, visible, batches...): kept in
-- Redis, in the same atomic step as the change they count, so every gateway worker reports
-- the same totals and a restart of any process loses none of them.
local function count(prefix, field, n)
  if n > 0 then
    redis.call('HINCRBY', prefix .. ':stats', field, n)
  end
end
