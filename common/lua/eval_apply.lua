-- Evaluation counters, in two calls per batch (docs/evaluation.md, "Once, and fast").
-- Each event is counted once per dossier and business fact (its token: "rcv", "dec",
-- "rq:phq", "st:phq", "closed"), kept in the dossier's profile, not per message id: a
-- redelivered, retried or replayed event and a rebuild give the same figures.
-- A profile is one packed string (the service packs and unpacks it: profile fields,
-- tokens counted, follow-ups), the field of the dossier in a bucket hash
-- qp:eval:p:N (N = a hash of the id, so each bucket stays a small listpack): a hash per
-- dossier cost a key, a dict entry and a listpack each. Profiles stored before as a
-- hash qp:eval:d:ID are read when the bucket has no field for the dossier, and moved
-- into the bucket by the first apply that counts something of it.
--
-- ARGV[1] = "read": ARGV[2..] triples (bucket key, field, dossier id); returns for each
--   the packed profile, or when the bucket has none the old hash qp:eval:d:ID (HGETALL:
--   an empty array when there is none either).
--   The service decides from it which events are new and adds up their increments.
--
-- ARGV[1] = "apply": writes what the service computed, only if what it read still holds:
--   nd, then per dossier (counted now, or whose profile the service did not read but
--       took from its own copy of what its last apply left): bucket key, field,
--       expected packed value ("" = absent), new packed value (the expected one when
--       nothing changes: not written again), the old hash to remove ("" = none);
--   nk, then per counter vector: key, its increments "L;#SLOT VALUE #SLOT VALUE ..." in
--       one argument (each becomes INCRBY i64 #SLOT VALUE of one BITFIELD: one argument
--       per vector to send and parse, not four per increment); with "L;" the key's last
--       L bytes are the vector's member in its index set (qp:eval:k:CELL for
--       qp:eval:v:CELL|DIM, qp:eval:days:T for qp:eval:dv:T|DAY), added when the vector
--       is new: the index sets are written once per vector, not once per batch;
--   ns, then per index set: key, n, n members (KEYS[1] the cells, KEYS[2] the
--       territories; a cell's dimensions and a territory's days of the vectors without
--       "L;" or whose increments cancelled out);
--   applied; as_of;
--   na, then na outbox members (type NUL envelope) of the events the batch carried,
--       counted now or already: removed from KEYS[4] with the counts (the subscriber's
--       ack, docs/reliability.md), so what is never counted stays for the sweeper.
--   Every dossier's profile is checked to be still the one read before anything is
--   written: if one is not (another instance counted the dossier meanwhile) nothing is
--   written and the 1-based ordinals of the dossiers at fault are returned, so the
--   service reads again. (Old hashes are not checked: no writer of that layout runs
--   beside this one, docs/operations.md "Upgrades".)
--   Counters are vectors of signed 64-bit integers (one string per cell and breakdown,
--   slot = the field number of qp.v1.Figures): one BITFIELD call adds every increment
--   of a vector, where a hash would take one HINCRBY per field.
-- KEYS[1] set of cell keys, KEYS[2] set of territories, KEYS[3] meta hash, KEYS[4] outbox
if ARGV[1] == 'read' then
  local out = {}
  for i = 2, #ARGV, 3 do
    out[#out + 1] = redis.call('HGET', ARGV[i], ARGV[i + 1]) or
                    redis.call('HGETALL', 'qp:eval:d:' .. ARGV[i + 2])
  end
  return out
end

local i = 2
local nd = tonumber(ARGV[i]); i = i + 1
local first = i
local bad = {}
for k = 1, nd do
  if (redis.call('HGET', ARGV[i], ARGV[i + 1]) or '') ~= ARGV[i + 2] then bad[#bad + 1] = k end
  i = i + 5
end
if #bad > 0 then return bad end

for a = first, i - 1, 5 do
  -- a profile checked with nothing new (taken from the service's own copy) is the same
  if ARGV[a + 3] ~= ARGV[a + 2] then redis.call('HSET', ARGV[a], ARGV[a + 1], ARGV[a + 3]) end
  if ARGV[a + 4] ~= '' then redis.call('UNLINK', ARGV[a + 4]) end
end

local nk = tonumber(ARGV[i]); i = i + 1
local ops = {}
for k = 1, nk do
  local key, incs = ARGV[i], ARGV[i + 1]
  local j = 0
  for slot, v in string.gmatch(incs, '(#%d+) (%-?%d+)') do
    ops[j + 1] = 'INCRBY'; ops[j + 2] = 'i64'; ops[j + 3] = slot; ops[j + 4] = v
    j = j + 4
  end
  local r = redis.call('BITFIELD', key, unpack(ops, 1, j))
  -- "L;#SLOT VALUE ...": the key's last L bytes are its member in its index set, added
  -- here only if the vector is new: every slot it adds to was 0 (each value now is its
  -- increment). A vector that existed was indexed by the call that made it.
  if string.byte(incs, 1) ~= 35 then
    local fresh = true
    for q = 1, j / 4 do
      if r[q] ~= tonumber(ops[4 * q]) then fresh = false; break end
    end
    local len = fresh and tonumber(string.match(incs, '^(%d+);'))
    if len then
      local set, bar = nil, #key - len -- the '|' before the member (which may be '')
      if string.sub(key, 1, 10) == 'qp:eval:v:' then
        set = 'qp:eval:k:' .. string.sub(key, 11, bar - 1)
      elseif string.sub(key, 1, 11) == 'qp:eval:dv:' then
        set = 'qp:eval:days:' .. string.sub(key, 12, bar - 1)
      end
      if set then redis.call('SADD', set, string.sub(key, bar + 1)) end
    end
  end
  i = i + 2
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
