-- Records events in the outbox (docs/architecture.md) with one ZADD, all at the same
-- deadline (each redis.call has a fixed cost): ARGV[first..last] are the members.
-- Included by the scripts that record a step's events (embed_lua.cmake).
local function outbox_add(outbox, deadline, first, last)
  if last < first then return end
  local add = {}
  for i = first, last do
    add[#add + 1] = deadline
    add[#add + 1] = ARGV[i]
  end
  redis.call('ZADD', outbox, unpack(add))
end
