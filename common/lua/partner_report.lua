-- Caches a partner component's hello or status, and its place in routing: one sorted
-- set per scheme, member "AGENCY/component" -> time until which it counts as live.
-- KEYS[1] component hash qp:partner:C, KEYS[2] agency set qp:partners:AGENCY
-- ARGV[1] component id, ARGV[2] agency, ARGV[3] ttl (ms), ARGV[4] live until (ms),
-- ARGV[5] accepting '1'|'0'|'' (hello: unknown, keep), ARGV[6] schemes ('' keep),
-- ARGV[7..] field, value...
if #ARGV > 6 then redis.call('HSET', KEYS[1], unpack(ARGV, 7)) end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'schemes', ARGV[6])
  -- kept without expiry too: a status alone does not carry them
  redis.call('HSET', 'qp:partners:schemes', ARGV[1], ARGV[6])
end
redis.call('HSET', KEYS[1], 'agency', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
local schemes = redis.call('HGET', KEYS[1], 'schemes')
if not schemes then
  -- The hash expired (funding down or stalled longer than its TTL) and a status made it
  -- again: the schemes of the component's hello, else it never routes again.
  schemes = redis.call('HGET', 'qp:partners:schemes', ARGV[1]) or ''
  if schemes ~= '' then redis.call('HSET', KEYS[1], 'schemes', schemes) end
end
local member = ARGV[2] .. '/' .. ARGV[1]
local accepting = ARGV[5]
if accepting == '' then accepting = redis.call('HGET', KEYS[1], 'accepting') or '1' end
for s in string.gmatch(schemes, '[^,]+') do
  local key = 'qp:route:{' .. s .. '}'
  if accepting == '1' then
    redis.call('ZADD', key, ARGV[4], member)
  else
    redis.call('ZREM', key, member)
  end
end
return 1
