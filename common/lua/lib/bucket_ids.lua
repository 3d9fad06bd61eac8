-- Ids in a bucket (qp_bucket.h): a 32-hex id as its 16 bytes, other text as is, with a
-- '=' in front when 16 bytes long or beginning with '=' (the two forms never meet).
-- Included by the scripts that read or write bucket fields (embed_lua.cmake).
local function pack(s)
  if #s == 32 and not s:find('[^0-9a-f]') then
    return (s:gsub('..', function(h) return string.char(tonumber(h, 16)) end))
  end
  if #s == 16 or s:sub(1, 1) == '=' then return '=' .. s end
  return s
end
local function unpack_id(v)
  if #v == 16 then
    return (v:gsub('.', function(c) return string.format('%02x', c:byte()) end))
  end
  if v:sub(1, 1) == '=' then return v:sub(2) end
  return v
end
