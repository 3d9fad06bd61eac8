-- Commits (up to the reserved amount) or releases a reservation, once.
-- KEYS[1] envelope hash, KEYS[2] ledger hash
-- ARGV[1] dossier id, ARGV[2] 'commit' | 'release', ARGV[3] amount to commit (cents)
-- Returns {1, entry} applied, {0, entry} already settled, {-1, 'no_reservation'}.
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if not prev then return {-1, 'no_reservation'} end
local kind, amount = string.match(prev, '^(%a+):(%d+)$')
if kind ~= 'reserved' then return {0, prev} end
amount = tonumber(amount)
redis.call('HINCRBY', KEYS[1], 'reserved', -amount)
if ARGV[2] == 'commit' then
  local c = math.min(tonumber(ARGV[3]), amount)
  redis.call('HINCRBY', KEYS[1], 'committed', c)
  redis.call('HSET', KEYS[2], ARGV[1], 'committed:' .. c)
  return {1, 'committed:' .. c}
end
redis.call('HINCRBY', KEYS[1], 'projects', -1)
redis.call('HSET', KEYS[2], ARGV[1], 'released:' .. amount)
return {1, 'released:' .. amount}
