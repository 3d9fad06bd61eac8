-- Moves a dossier from the expected state to the next one, atomically, or does nothing
-- (a duplicate or late message) and says which state the dossier is in.
-- KEYS[1] dossier hash, KEYS[2] history list, KEYS[3] pending set of the expected state,
-- KEYS[4] pending set of the next state (ignored when ARGV[4] is '': a terminal state),
-- KEYS[5] (optional) the outbox: events recorded with the step (docs/architecture.md)
-- ARGV[1] id, ARGV[2] expected, ARGV[3] next, ARGV[4] lease deadline or '',
-- ARGV[5] history entry, then with KEYS[5]: ARGV[6] outbox deadline (ms), ARGV[7] n events,
-- ARGV[8] n acks, the n events (outbox members), the n acks (members published since:
-- removed); then field, value...
-- Returns {1, next} applied, {0, current} not in the expected state, {-1, ''} unknown.
-- Each redis.call costs Redis a fixed overhead and each write its own AOF entry, so the
-- step reads with one HMGET and writes the hash with one HSET (docs/benchmarks.md).
--#include outbox_add.lua
local f, ne = 6, 0
if #KEYS > 4 then
  ne = tonumber(ARGV[7])
  local na = tonumber(ARGV[8])
  f = 9 + ne + na
  if na > 0 then redis.call('ZREM', KEYS[5], unpack(ARGV, 9 + ne, 8 + ne + na)) end
end
local cur = redis.call('HMGET', KEYS[1], 'state', 'h')
if not cur[1] then return {-1, ''} end
if cur[1] ~= ARGV[2] then return {0, cur[1]} end
-- The history is the hash's field h (a packed qp.v1.History: entries concatenate);
-- KEYS[2], the list of dossiers stored before issue 8, is only read.
local h = (cur[2] or '') .. ARGV[5]
if #ARGV >= f then
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'h', h, unpack(ARGV, f))
else
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'h', h)
end
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1]) end
if ne > 0 then outbox_add(KEYS[5], ARGV[6], 9, 8 + ne) end
return {1, ARGV[3]}
