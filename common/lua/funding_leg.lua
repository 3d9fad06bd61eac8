-- Writes legs of funding plans (a batch, any dossiers) where nobody changed them since
-- they were read (compare-and-set on a version per leg), appends each written leg's step
-- to its dossier's history, and sets when each dossier's next funding action is due.
-- KEYS[1] due sorted set (dossier -> next action ms), then per leg: KEYS[2i] plan hash
-- qp:{ID}:f (fields SCHEME = packed qp.v1.FundingLeg, SCHEME:v = version),
-- KEYS[2i+1] dossier hash qp:{ID}:d (its history field h, a packed qp.v1.History)
-- KEYS[2n+2] the event outbox (qp:pending:outbox)
-- ARGV[1] number of legs n, then per leg 5 values: scheme, expected version ('0' when
-- absent), packed leg, history entry (qp_store_history_pack, '' none), outbox member of
-- the event the write reports ('' none: a first FundingRequest, recorded only when the
-- leg is written); then the outbox deadline (ms); then pairs dossier id, next action ms
-- ('' removes the dossier from the due set)
-- Returns per leg {1, new version} written or {0, current version} changed meanwhile.
-- The version and the leg go in one HSET; each dossier's history is read once and written
-- once (its legs' steps appended in order), the outbox members and due times each in one
-- ZADD (or ZREM) for the batch: the same end state as leg by leg, with fewer commands.
--#include many.lua
local n = tonumber(ARGV[1])
local out = {}
local histories, horder = {}, {}  -- dossier hash -> its history as it grows
local members = {}                -- score, member, ... for the outbox
local deadline = ARGV[2 + n * 5]
for i = 1, n do
  local a = 1 + (i - 1) * 5
  local plan, history = KEYS[2 * i], KEYS[2 * i + 1]
  local scheme = ARGV[a + 1]
  local v = redis.call('HGET', plan, scheme .. ':v') or '0'
  if v ~= ARGV[a + 2] then
    out[i] = {0, v}
  else
    local nv = tostring(tonumber(v) + 1)
    redis.call('HSET', plan, scheme, ARGV[a + 3], scheme .. ':v', nv)
    if ARGV[a + 4] ~= '' then
      local h = histories[history]
      if h == nil then
        h = {redis.call('HGET', history, 'h') or ''}
        histories[history] = h
        horder[#horder + 1] = history
      end
      h[#h + 1] = ARGV[a + 4]
    end
    if ARGV[a + 5] ~= '' then
      members[#members + 1] = deadline
      members[#members + 1] = ARGV[a + 5]
    end
    out[i] = {1, nv}
  end
end
for _, key in ipairs(horder) do
  redis.call('HSET', key, 'h', table.concat(histories[key]))
end
-- In chunks of at most 1000 arguments (unpack's limit is 8000).
many('ZADD', KEYS[2 * n + 2], members)
-- Due times in order: a run of additions in one ZADD, a run of removals in one ZREM.
local adds, dels = {}, {}
local function flush()
  many('ZADD', KEYS[1], adds)
  many('ZREM', KEYS[1], dels)
  adds, dels = {}, {}
end
for a = 3 + n * 5, #ARGV, 2 do
  if ARGV[a + 1] == '' then
    if #adds > 0 then flush() end
    dels[#dels + 1] = ARGV[a]
  else
    if #dels > 0 then flush() end
    adds[#adds + 1] = ARGV[a + 1]
    adds[#adds + 1] = ARGV[a]
  end
end
flush()
return out
