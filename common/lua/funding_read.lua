-- Reads many hashes in one round trip (a batch of dossiers): the given fields of each
-- (HMGET), or the whole hash (HGETALL) when no field is given.
-- KEYS[1..n] hashes; ARGV[1..] fields (none: every field)
-- Returns one array per key, in KEYS order.
local out = {}
for i, key in ipairs(KEYS) do
  if #ARGV > 0 then
    out[i] = redis.call('HMGET', key, unpack(ARGV))
  else
    out[i] = redis.call('HGETALL', key)
  end
end
return out
