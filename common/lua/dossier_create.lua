-- Creates a dossier once. Idempotent: the id derives from (channel, key), so a second
-- submission finds the hash and changes nothing.
-- KEYS[1] dossier hash, KEYS[2] history list, KEYS[3] pending set of RECEIVED
-- ARGV[1] id, ARGV[2] lease deadline (ms), ARGV[3] history entry, ARGV[4..] field, value...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'state')}
end
redis.call('HSET', KEYS[1], 'state', 'RECEIVED', unpack(ARGV, 4))
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {1, 'RECEIVED'}
