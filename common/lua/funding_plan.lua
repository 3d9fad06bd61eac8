-- Creates a dossier's funding plan once: the first writer wins, a second one (another
-- funding instance, a sweeper) finds the plan there and changes nothing.
-- KEYS[1] plan hash qp:{ID}:f
-- ARGV[1] comma-separated schemes, ARGV[2..] scheme, packed leg, ...
-- Returns 1 created, 0 already there.
if redis.call('HSETNX', KEYS[1], 'legs', ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1], ARGV[i] .. ':v', 1)
end
return 1
