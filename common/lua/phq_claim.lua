-- One Prêt d'honneur Quartiers per natural person per support network: claims the
-- (person, network) slot for a dossier. The slot is free when nobody holds it, when this
-- dossier holds it already (a redelivery), or when its holder ended without funding
-- (NOT_ELIGIBLE, DECLINED, UNFUNDED) or no longer exists.
-- KEYS[1] slot key; ARGV[1] dossier id
-- Returns {1, previous holder or ''} claimed, {0, holder} held by another dossier.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local state = redis.call('HGET', 'qp:{' .. holder .. '}:d', 'state')
  if state and state ~= 'NOT_ELIGIBLE' and state ~= 'DECLINED' and state ~= 'UNFUNDED' then
    return {0, holder}
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, holder or ''}
