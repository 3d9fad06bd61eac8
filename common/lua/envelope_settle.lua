-- Commits (up to the reserved amount) or releases reservations (a batch), each once, in
-- the national envelope and in the territory's drawing right the reservation drew on.
-- Per settlement i, KEYS[5i-4] envelope hash, KEYS[5i-3] the dossier's ledger bucket
-- (qp_bucket.h; the dossier id packed, lib/bucket_ids.lua), KEYS[5i-2] the ledger as stored before
-- issue 8 (read when the bucket has no entry; the new entry goes to the bucket, which is
-- read first), KEYS[5i-1] deadlines sorted set, KEYS[5i] prefix of the drawing-right
-- hashes ("qp:envelope:{S}:t:")
-- ARGV[3i-2] dossier id, ARGV[3i-1] 'commit' | 'release', ARGV[3i] amount to commit (cents)
-- Returns per settlement (the pair alone for one) {1, entry} applied, {0, entry} already settled,
-- {-1, 'no_reservation'}.
--#include bucket_ids.lua
local function settle(env, ledger, old, deadlines, prefix, id, what, commit_s)
  local field = pack(id)
  local prev = redis.call('HGET', ledger, field) or redis.call('HGET', old, id)
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
    redis.call('HSET', ledger, field, 'committed:' .. c .. suffix)
    return {1, 'committed:' .. c .. suffix}
  end
  move(env, 0)
  if right then move(right, 0) end
  redis.call('HINCRBY', env, 'projects', -1)
  redis.call('HSET', ledger, field, 'released:' .. amount .. suffix)
  return {1, 'released:' .. amount .. suffix}
end
local out = {}
for i = 1, #KEYS / 5 do
  local k, a = 5 * (i - 1), 3 * (i - 1)
  out[i] = settle(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
                  ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
end
-- One only: the pair itself (the callers of one, unchanged).
if #KEYS == 5 then return out[1] end
return out
