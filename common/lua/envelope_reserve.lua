-- Reserves amounts for (dossier, scheme) pairs (a batch), each once: in the scheme's
-- national envelope and, when the territory has a drawing right on the scheme, in that
-- right too. The ledger entry makes a second call return the first answer.
-- Per reservation i, KEYS[5i-4] envelope hash (total, reserved, committed, available,
-- max_projects, projects), KEYS[5i-3] the dossier's ledger bucket (a hash dossier id,
-- packed (lib/bucket_ids.lua) -> "reserved:N[@T]" | "committed:N[@T]" | "released:N[@T]" |
-- "refused:0", qp_bucket.h),
-- KEYS[5i-2] the ledger as stored before issue 8 (one hash, read when the bucket has no
-- entry), KEYS[5i-1] drawing right hash of the territory (total, reserved, committed,
-- available), KEYS[5i] deadlines sorted set dossier -> reservation deadline (ms)
-- ARGV[4i-3] dossier id, ARGV[4i-2] amount (cents), ARGV[4i-1] territory ('' none),
-- ARGV[4i] deadline (ms)
-- Returns per reservation (the pair alone for one) {1, entry} newly written, {0, entry} already there,
-- {-1, 'no_envelope'}.
-- Invariant kept by every script: reserved + committed + available = total.
--#include bucket_ids.lua
local function reserve(env, ledger, old, rightkey, deadlines, id, amount_s, territory, deadline)
  local field = pack(id)
  local prev = redis.call('HGET', ledger, field) or redis.call('HGET', old, id)
  if prev then return {0, prev} end
  local total = redis.call('HGET', env, 'total')
  if not total then return {-1, 'no_envelope'} end
  local amount = tonumber(amount_s)
  local e = redis.call('HMGET', env, 'available', 'max_projects', 'projects')
  local available = tonumber(e[1] or total)
  local max_projects = tonumber(e[2] or '0')
  local projects = tonumber(e[3] or '0')
  local right = territory ~= '' and redis.call('HGET', rightkey, 'total')
  if amount > available or (max_projects > 0 and projects >= max_projects) then
    redis.call('HSET', ledger, field, 'refused:0')
    return {1, 'refused:0'}
  end
  if right then
    local ravail = tonumber(redis.call('HGET', rightkey, 'available') or right)
    if amount > ravail then
      redis.call('HSET', ledger, field, 'refused:0')
      return {1, 'refused:0'}
    end
    redis.call('HSET', rightkey, 'available', ravail - amount)
    redis.call('HINCRBY', rightkey, 'reserved', amount)
  end
  redis.call('HSET', env, 'available', available - amount)
  redis.call('HINCRBY', env, 'reserved', amount)
  redis.call('HINCRBY', env, 'projects', 1)
  local entry = 'reserved:' .. amount_s
  if right then entry = entry .. '@' .. territory end
  redis.call('HSET', ledger, field, entry)
  redis.call('ZADD', deadlines, deadline, id)
  return {1, entry}
end
local out = {}
for i = 1, #KEYS / 5 do
  local k, a = 5 * (i - 1), 4 * (i - 1)
  out[i] = reserve(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
                   ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
-- One only: the pair itself (the callers of one, unchanged).
if #KEYS == 5 then return out[1] end
return out
