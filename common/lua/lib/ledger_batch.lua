-- A batch's ledger entries (envelope_reserve.lua, envelope_settle.lua): read once, kept
-- as the batch decides, written at the end with one HSET per ledger bucket.
-- Included after bucket_ids.lua and many.lua (embed_lua.cmake).
local old_there = {}              -- old ledger key -> whether it exists (never written)
local entries, ledgers = {}, {}   -- ledger key -> the entries this batch writes
-- The entry of packed field (dossier id) in ledger: this batch's, else the bucket's, else
-- the one in the ledger as stored before issue 8 (old), read only when that hash exists.
local function entry_of(ledger, old, field, id)
  local mine = entries[ledger] and entries[ledger].map[field]
  if mine then return mine end
  local prev = redis.call('HGET', ledger, field)
  if prev then return prev end
  if old_there[old] == nil then old_there[old] = redis.call('EXISTS', old) == 1 end
  return old_there[old] and redis.call('HGET', old, id) or nil
end
local function record(ledger, field, entry)
  local e = entries[ledger]
  if not e then
    e = {map = {}, fields = {}}
    entries[ledger] = e
    ledgers[#ledgers + 1] = ledger
  end
  if not e.map[field] then e.fields[#e.fields + 1] = field end
  e.map[field] = entry
end
local function write_ledgers()
  for _, ledger in ipairs(ledgers) do
    local list, e = {}, entries[ledger]
    for _, field in ipairs(e.fields) do
      list[#list + 1] = field
      list[#list + 1] = e.map[field]
    end
    many('HSET', ledger, list)
  end
end
