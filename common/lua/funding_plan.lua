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
    -- Every leg and its version in one HSET.
    local fields = {}
    for j = 0, c - 1 do
      local s = ARGV[a + 2 + 2 * j]
      fields[4 * j + 1], fields[4 * j + 2] = s, ARGV[a + 3 + 2 * j]
      fields[4 * j + 3], fields[4 * j + 4] = s .. ':v', 1
    end
    if c > 0 then redis.call('HSET', key, unpack(fields)) end
    out[i] = 1
  else
    out[i] = redis.call('HGETALL', key)
  end
  a = a + 2 + 2 * c
end
return out
