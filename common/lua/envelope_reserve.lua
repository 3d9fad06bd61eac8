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
-- A batch reads each envelope, right and old ledger once, decides every reservation in
-- order on those figures, then writes: one HSET available and one HINCRBY per field for
-- each hash, one HSET per ledger bucket, one ZADD per deadlines set (the same end state
-- as writing reservation by reservation, with a fifth of the commands). Nothing is
-- written before every answer is known.
--#include bucket_ids.lua
--#include many.lua
--#include ledger_batch.lua
local books, order = {}, {}       -- envelope or right key -> its figures as they go
local function figures(key)
  local f = books[key]
  if f == nil then
    local h = redis.call('HMGET', key, 'total', 'available', 'max_projects', 'projects')
    f = {total = h[1], available = tonumber(h[2] or h[1]), max_projects = tonumber(h[3] or '0'),
         projects = tonumber(h[4] or '0'), reserved = 0, dprojects = 0, written = false,
         envelope = false}
    books[key] = f
  end
  return f
end
local deadlines, dorder = {}, {}  -- deadlines key -> {score, member, ...}
local function touch(key, f)
  if not f.written then
    f.written = true
    order[#order + 1] = key
  end
end
local function reserve(env, ledger, old, rightkey, dkey, id, amount_s, territory, deadline)
  local field = pack(id)
  local prev = entry_of(ledger, old, field, id)
  if prev then return {0, prev} end
  local e = figures(env)
  if not e.total then return {-1, 'no_envelope'} end
  local amount = tonumber(amount_s)
  local r = territory ~= '' and figures(rightkey)
  local right = r and r.total
  if amount > e.available or (e.max_projects > 0 and e.projects >= e.max_projects) then
    record(ledger, field, 'refused:0')
    return {1, 'refused:0'}
  end
  if right then
    if amount > r.available then
      record(ledger, field, 'refused:0')
      return {1, 'refused:0'}
    end
    r.available = r.available - amount
    r.reserved = r.reserved + amount
    touch(rightkey, r)
  end
  e.available = e.available - amount
  e.reserved = e.reserved + amount
  e.projects = e.projects + 1
  e.dprojects = e.dprojects + 1
  e.envelope = true
  touch(env, e)
  local entry = 'reserved:' .. amount_s
  if right then entry = entry .. '@' .. territory end
  record(ledger, field, entry)
  local d = deadlines[dkey]
  if not d then
    d = {}
    deadlines[dkey] = d
    dorder[#dorder + 1] = dkey
  end
  d[#d + 1] = deadline
  d[#d + 1] = id
  return {1, entry}
end
local out = {}
for i = 1, #KEYS / 5 do
  local k, a = 5 * (i - 1), 4 * (i - 1)
  out[i] = reserve(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
                   ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
-- The writes, in chunks of at most 1000 arguments (unpack's limit is 8000).
for _, key in ipairs(order) do
  local f = books[key]
  redis.call('HSET', key, 'available', f.available)
  redis.call('HINCRBY', key, 'reserved', f.reserved)
  if f.envelope then redis.call('HINCRBY', key, 'projects', f.dprojects) end
end
write_ledgers()
for _, key in ipairs(dorder) do many('ZADD', key, deadlines[key]) end
-- One only: the pair itself (the callers of one, unchanged).
if #KEYS == 5 then return out[1] end
return out
