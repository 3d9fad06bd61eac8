-- One Prêt d'honneur Quartiers per natural person per support network: claims the
-- (person, network) slot for a dossier. The slot is free when nobody holds it, when this
-- dossier holds it already (a redelivery), or when its holder ended without funding
-- (NOT_ELIGIBLE, DECLINED, UNFUNDED) or no longer exists.
-- KEYS[1] the slot's bucket hash (qp:phq:NETWORK:#B, person key -> holder, both packed
-- as below; qp_bucket.h),
-- KEYS[2] the slot as stored before issue 8 (qp:phq:NETWORK:PERSON, a string), read when
-- the bucket has no field for the person: an upgraded stack keeps its holders.
-- ARGV[1] person key, ARGV[2] dossier id
-- Returns {1, previous holder or ''} claimed, {0, holder} held by another dossier.
-- Ids in a bucket: a 32-hex id as its 16 bytes, other text as is, with a '=' in front
-- when 16 bytes long or beginning with '=' (the two forms never meet).
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
local person, id = pack(ARGV[1]), pack(ARGV[2])
local holder = redis.call('HGET', KEYS[1], person)
local in_bucket = holder
if holder then holder = unpack_id(holder) else holder = redis.call('GET', KEYS[2]) end
if holder and holder ~= ARGV[2] then
  local state = redis.call('HGET', 'qp:{' .. holder .. '}:d', 'state')
  if state and state ~= 'NOT_ELIGIBLE' and state ~= 'DECLINED' and state ~= 'UNFUNDED' then
    return {0, holder}
  end
end
-- A redelivery changes nothing; a holder read from the old form is written in the bucket.
if not (in_bucket and holder == ARGV[2]) then
  redis.call('HSET', KEYS[1], person, id)
end
return {1, holder or ''}
