-- Ids in a bucket (qp_bucket.h): a 32-hex id as its 16 bytes, other text as is, with a
-- '=' in front when 16 bytes long or beginning with '=' (the two forms never meet).
-- Included by the scripts that read or write bucket fields (embed_lua.cmake).
-- struct (Redis's Lua) packs the four 32-bit words: 1.1 µs a pack and unpack against
-- 5.3 with a gsub callback per byte (docs/benchmarks.md).
local function pack(s)
  if #s == 32 and not s:find('[^0-9a-f]') then
    return struct.pack('>I4I4I4I4', tonumber(s:sub(1, 8), 16), tonumber(s:sub(9, 16), 16),
                       tonumber(s:sub(17, 24), 16), tonumber(s:sub(25, 32), 16))
  end
  if #s == 16 or s:sub(1, 1) == '=' then return '=' .. s end
  return s
end
local function unpack_id(v)
  if #v == 16 then
    return string.format('%08x%08x%08x%08x', struct.unpack('>I4I4I4I4', v))
  end
  if v:sub(1, 1) == '=' then return v:sub(2) end
  return v
end
