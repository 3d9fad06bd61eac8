-- Releases the reservations of a scheme whose deadline has passed (a dossier whose plan
-- never closed). Same bookkeeping as envelope_settle's release.
-- KEYS[1] envelope hash, KEYS[2] the ledger as stored before issue 8 (read when a
-- dossier's bucket has no entry), KEYS[3] deadlines sorted set, KEYS[4] prefix of the
-- drawing-right hashes, KEYS[5] prefix of the ledger buckets ("qp:envelope:{S}:ledger:",
-- fields: dossier ids packed, lib/bucket_ids.lua)
-- ARGV[1] now (ms), ARGV[2] limit, ARGV[3] number of buckets (QP_BUCKETS)
-- Returns the dossier ids released.
local nbuckets = tonumber(ARGV[3])
-- A dossier's ledger bucket: qp_bucket_of (common/qp_bucket.c), the same hash.
local function bucket(id)
  local h = 0
  for i = 1, #id do h = (h * 31 + id:byte(i)) % nbuckets end
  return KEYS[5] .. h
end
--#include bucket_ids.lua
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local released = {}
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local ledger = bucket(id)
  local field = pack(id)
  local prev = redis.call('HGET', ledger, field) or redis.call('HGET', KEYS[2], id)
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
    redis.call('HSET', ledger, field, 'released:' .. amount .. suffix)
    released[#released + 1] = id
  end
end
return released
