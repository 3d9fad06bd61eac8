-- Reserves an amount in a budget envelope for one (dossier, scheme), once: the ledger
-- entry makes a second call return the first answer.
-- KEYS[1] envelope hash (total, reserved, committed, max_projects, projects),
-- KEYS[2] ledger hash dossier -> "reserved:N" | "committed:N" | "released:N" | "refused:0"
-- ARGV[1] dossier id, ARGV[2] amount (cents)
-- Returns {1, entry} newly written, {0, entry} already there, {-1, 'no_envelope'}.
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then return {0, prev} end
local total = redis.call('HGET', KEYS[1], 'total')
if not total then return {-1, 'no_envelope'} end
total = tonumber(total)
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local committed = tonumber(redis.call('HGET', KEYS[1], 'committed') or '0')
local max_projects = tonumber(redis.call('HGET', KEYS[1], 'max_projects') or '0')
local projects = tonumber(redis.call('HGET', KEYS[1], 'projects') or '0')
local amount = tonumber(ARGV[2])
if reserved + committed + amount > total or (max_projects > 0 and projects >= max_projects) then
  redis.call('HSET', KEYS[2], ARGV[1], 'refused:0')
  return {1, 'refused:0'}
end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('HINCRBY', KEYS[1], 'projects', 1)
redis.call('HSET', KEYS[2], ARGV[1], 'reserved:' .. ARGV[2])
return {1, 'reserved:' .. ARGV[2]}
