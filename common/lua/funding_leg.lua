-- Writes one leg of a dossier's funding plan if nobody changed it since it was read
-- (compare-and-set on a version), and appends a step to the dossier's history.
-- KEYS[1] plan hash qp:{ID}:f (fields SCHEME = packed qp.v1.FundingLeg, SCHEME:v = version),
-- KEYS[2] history list qp:{ID}:h, KEYS[3] due sorted set (dossier -> next action ms)
-- ARGV[1] scheme, ARGV[2] expected version ('0' when absent), ARGV[3] packed leg,
-- ARGV[4] history entry ('' none), ARGV[5] dossier id, ARGV[6] next action ms ('' none)
-- Returns {1, new version} written, {0, current version} changed meanwhile.
local v = redis.call('HGET', KEYS[1], ARGV[1] .. ':v') or '0'
if v ~= ARGV[2] then return {0, v} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local nv = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':v', 1)
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[4]) end
if ARGV[6] ~= '' then
  local cur = redis.call('ZSCORE', KEYS[3], ARGV[5])
  if not cur or tonumber(cur) > tonumber(ARGV[6]) then
    redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
  end
end
return {1, tostring(nv)}
