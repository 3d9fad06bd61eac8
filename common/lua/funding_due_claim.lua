-- Claims the dossiers whose next funding action is due, pushing their time forward so
-- that another instance does not take them at the same time.
-- KEYS[1] due sorted set, ARGV[1] now (ms), ARGV[2] limit, ARGV[3] push (ms)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local later = tonumber(ARGV[1]) + tonumber(ARGV[3])
-- One ZADD for them all (in chunks of 500 pairs: unpack's limit is 8000 values).
local pairs_ = {}
for _, id in ipairs(ids) do
  pairs_[#pairs_ + 1] = later
  pairs_[#pairs_ + 1] = id
end
for j = 1, #pairs_, 1000 do
  redis.call('ZADD', KEYS[1], unpack(pairs_, j, math.min(j + 999, #pairs_)))
end
return ids
