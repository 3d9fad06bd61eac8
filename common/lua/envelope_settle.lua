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
-- A batch reads each envelope or right once and moves its figures in order, then writes
-- them: one HINCRBY per field and one HSET available per hash, one HSET per ledger
-- bucket, one ZREM per deadlines set (the same end state as settling one by one, with a
-- fraction of the commands). Nothing is written before every answer is known.
--#include bucket_ids.lua
--#include many.lua
--#include ledger_batch.lua
local books, order = {}, {}       -- envelope or right key -> its figures as they go
local function figures(key)
  local f = books[key]
  if f == nil then
    local h = redis.call('HMGET', key, 'total', 'available')
    f = {available = tonumber(h[2] or h[1]), reserved = 0, committed = 0, released = 0}
    books[key] = f
    order[#order + 1] = key
  end
  return f
end
local gone, dorder = {}, {}       -- deadlines key -> members to remove
local function settle(env, ledger, old, dkey, prefix, id, what, commit_s)
  local field = pack(id)
  local prev = entry_of(ledger, old, field, id)
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
    local f = figures(key)
    f.reserved = f.reserved - amount
    f.committed = f.committed + committed
    f.available = f.available + amount - committed
  end
  local g = gone[dkey]
  if not g then
    g = {}
    gone[dkey] = g
    dorder[#dorder + 1] = dkey
  end
  g[#g + 1] = id
  if what == 'commit' then
    local c = math.min(tonumber(commit_s), amount)
    move(env, c)
    if right then move(right, c) end
    record(ledger, field, 'committed:' .. c .. suffix)
    return {1, 'committed:' .. c .. suffix}
  end
  move(env, 0)
  if right then move(right, 0) end
  local f = figures(env)
  f.released = f.released + 1
  record(ledger, field, 'released:' .. amount .. suffix)
  return {1, 'released:' .. amount .. suffix}
end
local out = {}
for i = 1, #KEYS / 5 do
  local k, a = 5 * (i - 1), 3 * (i - 1)
  out[i] = settle(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
                  ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
end
-- The writes, in chunks of at most 1000 arguments (unpack's limit is 8000).
for _, key in ipairs(dorder) do many('ZREM', key, gone[key]) end
for _, key in ipairs(order) do
  local f = books[key]
  redis.call('HINCRBY', key, 'reserved', f.reserved)
  redis.call('HINCRBY', key, 'committed', f.committed)
  redis.call('HSET', key, 'available', f.available)
  if f.released > 0 then redis.call('HINCRBY', key, 'projects', -f.released) end
end
write_ledgers()
-- One only: the pair itself (the callers of one, unchanged).
if #KEYS == 5 then return out[1] end
return out
