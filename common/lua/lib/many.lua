-- redis.call(cmd, key, list...) for a list of any length, 1,000 items a call (unpack puts
-- them on Lua's C stack, which is bounded). Included by the batch scripts (embed_lua.cmake).
local function many(cmd, key, list)
  for j = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, j, math.min(j + 999, #list)))
  end
end
