-- Reserves an amount for one (dossier, scheme), once: in the scheme's national envelope
-- and, when the territory has a drawing right on the scheme, in that right too. The
-- ledger entry makes a second call return the first answer.
-- KEYS[1] envelope hash (total, reserved, committed, available, max_projects, projects),
-- KEYS[2] ledger hash dossier -> "reserved:N[@T]" | "committed:N[@T]" | "released:N[@T]" | "refused:0"
-- KEYS[3] drawing right hash of the territory (total, reserved, committed, available),
-- KEYS[4] deadlines sorted set dossier -> reservation deadline (ms)
-- ARGV[1] dossier id, ARGV[2] amount (cents), ARGV[3] territory ('' none), ARGV[4] deadline (ms)
-- Returns {1, entry} newly written, {0, entry} already there, {-1, 'no_envelope'}.
-- Invariant kept by every script: reserved + committed + available = total.
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then return {0, prev} end
local total = redis.call('HGET', KEYS[1], 'total')
if not total then return {-1, 'no_envelope'} end
local amount = tonumber(ARGV[2])
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or total)
local max_projects = tonumber(redis.call('HGET', KEYS[1], 'max_projects') or '0')
local projects = tonumber(redis.call('HGET', KEYS[1], 'projects') or '0')
local right = ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'total')
if amount > available or (max_projects > 0 and projects >= max_projects) then
  redis.call('HSET', KEYS[2], ARGV[1], 'refused:0')
  return {1, 'refused:0'}
end
if right then
  local ravail = tonumber(redis.call('HGET', KEYS[3], 'available') or right)
  if amount > ravail then
    redis.call('HSET', KEYS[2], ARGV[1], 'refused:0')
    return {1, 'refused:0'}
  end
  redis.call('HSET', KEYS[3], 'available', ravail - amount)
  redis.call('HINCRBY', KEYS[3], 'reserved', amount)
end
redis.call('HSET', KEYS[1], 'available', available - amount)
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('HINCRBY', KEYS[1], 'projects', 1)
local entry = 'reserved:' .. ARGV[2]
if right then entry = entry .. '@' .. ARGV[3] end
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
return {1, entry}
