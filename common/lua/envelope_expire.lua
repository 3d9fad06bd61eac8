-- Releases the reservations of a scheme whose deadline has passed (a dossier whose plan
-- never closed). Same bookkeeping as envelope_settle's release.
-- KEYS[1] envelope hash, KEYS[2] ledger hash, KEYS[3] deadlines sorted set,
-- KEYS[4] prefix of the drawing-right hashes
-- ARGV[1] now (ms), ARGV[2] limit
-- Returns the dossier ids released.
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local released = {}
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local prev = redis.call('HGET', KEYS[2], id)
  local kind, amount, territory = string.match(prev or '', '^(%a+):(%d+)@?(.*)$')
  if kind == 'reserved' then
    amount = tonumber(amount)
    local keys = {KEYS[1]}
    if territory ~= '' then keys[2] = KEYS[4] .. territory end
    for _, key in ipairs(keys) do
      redis.call('HINCRBY', key, 'reserved', -amount)
      local total = tonumber(redis.call('HGET', key, 'total'))
      local available = tonumber(redis.call('HGET', key, 'available') or total)
      redis.call('HSET', key, 'available', available + amount)
    end
    redis.call('HINCRBY', KEYS[1], 'projects', -1)
    local suffix = territory ~= '' and ('@' .. territory) or ''
    redis.call('HSET', KEYS[2], id, 'released:' .. amount .. suffix)
    released[#released + 1] = id
  end
end
return released
