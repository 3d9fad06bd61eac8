-- Commits (up to the reserved amount) or releases a reservation, once, in the national
-- envelope and in the territory's drawing right the reservation drew on.
-- KEYS[1] envelope hash, KEYS[2] ledger hash, KEYS[3] deadlines sorted set,
-- KEYS[4] prefix of the drawing-right hashes ("qp:envelope:{S}:t:")
-- ARGV[1] dossier id, ARGV[2] 'commit' | 'release', ARGV[3] amount to commit (cents)
-- Returns {1, entry} applied, {0, entry} already settled, {-1, 'no_reservation'}.
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if not prev then return {-1, 'no_reservation'} end
local kind, amount, territory = string.match(prev, '^(%a+):(%d+)@?(.*)$')
if kind ~= 'reserved' then return {0, prev} end
amount = tonumber(amount)
local suffix = ''
local right = nil
if territory ~= '' then
  suffix = '@' .. territory
  right = KEYS[4] .. territory
end
local function move(key, committed)
  redis.call('HINCRBY', key, 'reserved', -amount)
  redis.call('HINCRBY', key, 'committed', committed)
  local total = tonumber(redis.call('HGET', key, 'total'))
  local available = tonumber(redis.call('HGET', key, 'available') or total)
  redis.call('HSET', key, 'available', available + amount - committed)
end
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == 'commit' then
  local c = math.min(tonumber(ARGV[3]), amount)
  move(KEYS[1], c)
  if right then move(right, c) end
  redis.call('HSET', KEYS[2], ARGV[1], 'committed:' .. c .. suffix)
  return {1, 'committed:' .. c .. suffix}
end
move(KEYS[1], 0)
if right then move(right, 0) end
redis.call('HINCRBY', KEYS[1], 'projects', -1)
redis.call('HSET', KEYS[2], ARGV[1], 'released:' .. amount .. suffix)
return {1, 'released:' .. amount .. suffix}
