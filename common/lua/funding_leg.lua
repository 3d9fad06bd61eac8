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
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local a = 1 + (i - 1) * 5
  local plan, history = KEYS[2 * i], KEYS[2 * i + 1]
  local scheme = ARGV[a + 1]
  local v = redis.call('HGET', plan, scheme .. ':v') or '0'
  if v ~= ARGV[a + 2] then
    out[i] = {0, v}
  else
    redis.call('HSET', plan, scheme, ARGV[a + 3])
    local nv = redis.call('HINCRBY', plan, scheme .. ':v', 1)
    if ARGV[a + 4] ~= '' then
      redis.call('HSET', history, 'h', (redis.call('HGET', history, 'h') or '') .. ARGV[a + 4])
    end
    if ARGV[a + 5] ~= '' then redis.call('ZADD', KEYS[2 * n + 2], ARGV[2 + n * 5], ARGV[a + 5]) end
    out[i] = {1, tostring(nv)}
  end
end
for a = 3 + n * 5, #ARGV, 2 do
  if ARGV[a + 1] == '' then
    redis.call('ZREM', KEYS[1], ARGV[a])
  else
    redis.call('ZADD', KEYS[1], ARGV[a + 1], ARGV[a])
  end
end
return out
