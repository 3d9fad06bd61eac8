-- Evaluation counters, in two calls per batch (docs/evaluation.md, "Once, and fast").
-- Each event is counted once per dossier and business fact (its token: "rcv", "dec",
-- "rq:phq", "st:phq", "closed"), kept in the dossier's profile hash qp:eval:d:ID, not per
-- message id: a redelivered, retried or replayed event and a rebuild give the same figures.
--
-- ARGV[1] = "read": ARGV[2..] dossier ids; returns each one's profile hash (HGETALL:
--   profile fields t m d a q n w y b, the tokens already counted, follow-ups fu1..fu3).
--   The service decides from it which events are new and adds up their increments.
--
-- ARGV[1] = "apply": writes what the service computed, only if what it read still holds:
--   nd, then per dossier: id, nc, nc pairs (field, expected value; "" = absent),
--       nw, nw pairs (field, value) to set (profile, tokens, follow-ups);
--   nk, then per counter vector: key, n, n times "INCRBY" "i64" "#SLOT" increment;
--   ns, then per index set: key, n, n members (KEYS[1] the cells, KEYS[2] the
--       territories, a cell's dimensions, a territory's days);
--   applied; as_of;
--   na, then na outbox members (type NUL envelope) of the events the batch carried,
--       counted now or already: removed from KEYS[4] with the counts (the subscriber's
--       ack, docs/reliability.md), so what is never counted stays for the sweeper.
--   Every expectation of every dossier is checked before anything is written: if one
--   fails (another instance counted the dossier meanwhile) nothing is written and the
--   1-based ordinals of the dossiers at fault are returned, so the service reads again.
--   Counters are vectors of signed 64-bit integers (one string per cell and breakdown,
--   slot = the field number of qp.v1.Figures): one BITFIELD call adds every increment
--   of a vector, where a hash would take one HINCRBY per field.
-- KEYS[1] set of cell keys, KEYS[2] set of territories, KEYS[3] meta hash, KEYS[4] outbox
if ARGV[1] == 'read' then
  local out = {}
  for i = 2, #ARGV do out[#out + 1] = redis.call('HGETALL', 'qp:eval:d:' .. ARGV[i]) end
  return out
end

local i = 2
local nd = tonumber(ARGV[i]); i = i + 1
local dossiers = {}
local bad = {}
for k = 1, nd do
  local d = {pk = 'qp:eval:d:' .. ARGV[i]}
  local nc = tonumber(ARGV[i + 1]); i = i + 2
  d.cf, d.ce = {}, {}
  for c = 1, nc do d.cf[c] = ARGV[i]; d.ce[c] = ARGV[i + 1]; i = i + 2 end
  local nw = tonumber(ARGV[i]); i = i + 1
  d.w0, d.w1 = i, i + 2 * nw - 1
  i = i + 2 * nw
  if nc > 0 then
    local now = redis.call('HMGET', d.pk, unpack(d.cf))
    for c = 1, nc do
      if (now[c] or '') ~= d.ce[c] then bad[#bad + 1] = k; break end
    end
  end
  dossiers[k] = d
end
if #bad > 0 then return bad end

for k = 1, nd do
  local d = dossiers[k]
  if d.w1 >= d.w0 then redis.call('HSET', d.pk, unpack(ARGV, d.w0, d.w1)) end
end

local nk = tonumber(ARGV[i]); i = i + 1
for k = 1, nk do
  local key, n = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('BITFIELD', key, unpack(ARGV, i + 2, i + 1 + 4 * n))
  i = i + 2 + 4 * n
end
local ns = tonumber(ARGV[i]); i = i + 1
for k = 1, ns do
  local key, n = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('SADD', key, unpack(ARGV, i + 2, i + 1 + n))
  i = i + 2 + n
end

local applied, as_of = tonumber(ARGV[i]), ARGV[i + 1]
if applied > 0 then
  redis.call('HINCRBY', KEYS[3], 'applied', applied)
  local last = redis.call('HGET', KEYS[3], 'as_of') or ''
  if as_of > last then redis.call('HSET', KEYS[3], 'as_of', as_of) end
end
i = i + 2
local na = tonumber(ARGV[i] or '0') or 0
-- at most 1000 members a call (Lua's unpack has a limit)
for a = i + 1, i + na, 1000 do
  redis.call('ZREM', KEYS[4], unpack(ARGV, a, math.min(a + 999, i + na)))
end
return {}
