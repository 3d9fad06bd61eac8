-- One Prêt d'honneur Quartiers per natural person per support network: claims the
-- (person, network) slot for a dossier. The slot is free when nobody holds it, when this
-- dossier holds it already (a redelivery), or when its holder ended without funding
-- (NOT_ELIGIBLE, DECLINED, UNFUNDED) or no longer exists.
-- KEYS[1] the slot's bucket hash (qp:phq:NETWORK:#B, person key -> holder, both packed
-- as lib/bucket_ids.lua says; qp_bucket.h),
-- KEYS[2] the slot as stored before issue 8 (qp:phq:NETWORK:PERSON, a string), read when
-- the bucket has no field for the person: an upgraded stack keeps its holders.
-- ARGV[1] person key, ARGV[2] dossier id
-- Returns {1, previous holder or ''} claimed, {0, holder} held by another dossier.
--#include bucket_ids.lua
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
