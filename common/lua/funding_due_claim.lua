-- Claims the dossiers whose next funding action is due, pushing their time forward so
-- that another instance does not take them at the same time.
-- KEYS[1] due sorted set, ARGV[1] now (ms), ARGV[2] limit, ARGV[3] push (ms)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local later = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], later, id) end
return ids
