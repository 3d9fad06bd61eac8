-- Creates a dossier once. Idempotent: the id derives from (channel, key), so a second
-- submission finds the hash and changes nothing.
-- KEYS[1] dossier hash, KEYS[2] history list, KEYS[3] pending set of RECEIVED,
-- KEYS[4] (optional) the outbox: events recorded with the creation (docs/architecture.md)
-- ARGV[1] id, ARGV[2] lease deadline (ms), ARGV[3] history entry, then with KEYS[4]:
-- ARGV[4] outbox deadline (ms), ARGV[5] n events, ARGV[6] n acks, the n events (outbox
-- members), the n acks (members published since: removed); then field, value...
--#include outbox_add.lua
local f = 4
if #KEYS > 3 then
  local ne, na = tonumber(ARGV[5]), tonumber(ARGV[6])
  f = 7 + ne + na
  if na > 0 then redis.call('ZREM', KEYS[4], unpack(ARGV, 7 + ne, 6 + ne + na)) end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return {0, redis.call('HGET', KEYS[1], 'state')}
  end
  outbox_add(KEYS[4], ARGV[4], 7, 6 + ne)
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'state')}
end
-- The history starts in the hash's field h (a packed qp.v1.History, issue 8); KEYS[2],
-- the list of dossiers stored before, is not written any more.
redis.call('HSET', KEYS[1], 'state', 'RECEIVED', 'h', ARGV[3], unpack(ARGV, f))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {1, 'RECEIVED'}
