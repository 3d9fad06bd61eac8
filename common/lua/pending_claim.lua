-- Claims the dossiers whose lease has expired in one pending set, pushing their lease
-- forward so that two sweepers never re-dispatch the same dossier at once.
-- KEYS[1] pending set; ARGV[1] now (ms), ARGV[2] new deadline (ms), ARGV[3] limit
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
