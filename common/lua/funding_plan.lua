-- Creates funding plans (a batch of dossiers), each once: the first writer wins, a
-- second one (another funding instance, a sweeper) finds the plan there, changes
-- nothing and gets it back.
-- KEYS[i] plan hash qp:{ID}:f of dossier i
-- ARGV per dossier: number of legs c, comma-separated schemes, then c pairs scheme,
-- packed leg
-- Returns per dossier 1 (created) or the plan already there (HGETALL).
local out = {}
local a = 1
for i, key in ipairs(KEYS) do
  local c = tonumber(ARGV[a])
  if redis.call('HSETNX', key, 'legs', ARGV[a + 1]) == 1 then
    for j = 0, c - 1 do
      local s = ARGV[a + 2 + 2 * j]
      redis.call('HSET', key, s, ARGV[a + 3 + 2 * j], s .. ':v', 1)
    end
    out[i] = 1
  else
    out[i] = redis.call('HGETALL', key)
  end
  a = a + 2 + 2 * c
end
return out
