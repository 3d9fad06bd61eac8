-- Commits (up to the reserved amount) or releases reservations (a batch), each once, in
-- the national envelope and in the territory's drawing right the reservation drew on.
-- Per settlement i, KEYS[4i-3] envelope hash, KEYS[4i-2] ledger hash, KEYS[4i-1] deadlines
-- sorted set, KEYS[4i] prefix of the drawing-right hashes ("qp:envelope:{S}:t:")
-- ARGV[3i-2] dossier id, ARGV[3i-1] 'commit' | 'release', ARGV[3i] amount to commit (cents)
-- Returns per settlement (the pair alone for one) {1, entry} applied, {0, entry} already settled,
-- {-1, 'no_reservation'}.
local function settle(env, ledger, deadlines, prefix, id, what, commit_s)
  local prev = redis.call('HGET', ledger, id)
  if not prev then return {-1, 'no_reservation'} end
  local kind, amount, territory = string.match(prev, '^(%a+):(%d+)@?(.*)$')
  if kind ~= 'reserved' then return {0, prev} end
  amount = tonumber(amount)
  local suffix = ''
  local right = nil
  if territory ~= '' then
    suffix = '@' .. territory
    right = prefix .. territory
  end
  local function move(key, committed)
    redis.call('HINCRBY', key, 'reserved', -amount)
    redis.call('HINCRBY', key, 'committed', committed)
    local h = redis.call('HMGET', key, 'total', 'available')
    local available = tonumber(h[2] or h[1])
    redis.call('HSET', key, 'available', available + amount - committed)
  end
  redis.call('ZREM', deadlines, id)
  if what == 'commit' then
    local c = math.min(tonumber(commit_s), amount)
    move(env, c)
    if right then move(right, c) end
    redis.call('HSET', ledger, id, 'committed:' .. c .. suffix)
    return {1, 'committed:' .. c .. suffix}
  end
  move(env, 0)
  if right then move(right, 0) end
  redis.call('HINCRBY', env, 'projects', -1)
  redis.call('HSET', ledger, id, 'released:' .. amount .. suffix)
  return {1, 'released:' .. amount .. suffix}
end
local out = {}
for i = 1, #KEYS / 4 do
  local k, a = 4 * (i - 1), 3 * (i - 1)
  out[i] = settle(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
                  ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
end
-- One only: the pair itself (the callers of one, unchanged).
if #KEYS == 4 then return out[1] end
return out
