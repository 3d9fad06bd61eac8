-- Applies a batch of evaluation events. Each event is counted once per dossier and
-- business fact (its token: "rcv", "dec", "rq:phq", "st:phq", "closed"), not per message
-- id, so a redelivered, retried or replayed event and a rebuild give the same counters.
-- KEYS[1] set of cell keys, KEYS[2] set of territories, KEYS[3] meta hash
-- ARGV: per event: dossier id, token, profile ("" or "t|month|day|axis|qpv|net|w|y|bank"),
--   n, then n triples (field, increment, mode). mode bits: 1 the dossier's cell
--   (territory, month, axis), 2 also per QPV and network in the cell, 4 the territory's
--   day series, 8 a follow-up (field "yN", increment "active:jobs", replaces the last),
--   16 the funded dossier's profile figures (bank loan leveraged, focus).
-- Returns the 1-based ordinals of the events whose dossier has no profile yet (nothing of
-- them was applied): the caller loads the dossier and sends them again with one.
local missing = {}
local i, ord = 1, 0
local applied = 0
local last_day = redis.call('HGET', KEYS[3], 'as_of') or ''
while i <= #ARGV do
  ord = ord + 1
  local id, token, profile, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local ops = i + 4
  i = ops + 3 * n
  local pk = 'qp:eval:d:' .. id
  if profile ~= '' and redis.call('EXISTS', pk) == 0 then
    local p = {}
    for v in string.gmatch(profile .. '|', '([^|]*)|') do p[#p + 1] = v end
    redis.call('HSET', pk, 't', p[1], 'm', p[2], 'd', p[3], 'a', p[4], 'q', p[5],
               'n', p[6], 'w', p[7], 'y', p[8], 'b', p[9])
  end
  local pr = redis.call('HMGET', pk, 't', 'm', 'd', 'a', 'q', 'n', 'w', 'y', 'b')
  if not pr[1] then
    missing[#missing + 1] = ord
  elseif token == '' or redis.call('HSETNX', pk, token, 1) == 1 then
    local t, m, d, a, q, net = pr[1], pr[2], pr[3], pr[4], pr[5], pr[6]
    local cell = 'qp:eval:c:' .. t .. '|' .. m .. '|' .. a
    local day = 'qp:eval:day:' .. t
    local function add(f, v, mode)
      if mode % 2 == 1 then redis.call('HINCRBY', cell, f, v) end
      if math.floor(mode / 2) % 2 == 1 then
        if q ~= '' then redis.call('HINCRBY', cell, 'q:' .. q .. ':' .. f, v) end
        if net ~= '' then redis.call('HINCRBY', cell, 'n:' .. net .. ':' .. f, v) end
      end
      if math.floor(mode / 4) % 2 == 1 then redis.call('HINCRBY', day, d .. '|' .. f, v) end
    end
    for k = ops, ops + 3 * n - 1, 3 do
      local f, v, mode = ARGV[k], ARGV[k + 1], tonumber(ARGV[k + 2])
      if mode >= 16 then
        -- funded: the bank loan it leveraged and the focus figures, from the profile
        add('bank_loan_cents', pr[9] ~= '' and pr[9] or '0', 7)
        if pr[7] == '1' then add('women_funded', 1, 3) end
        if pr[8] == '1' then add('under_30_funded', 1, 3) end
      elseif mode >= 8 then
        local year = string.sub(f, 2)
        local act, jobs = string.match(v, '(%d+):(%d+)')
        local old = redis.call('HGET', pk, 'fu' .. year)
        if old then
          local oa, oj = string.match(old, '(%d+):(%d+)')
          add('followed_y' .. year, -1, 3)
          -- 0 - x, not -x: Lua's -0 reaches Redis as "-0", which HINCRBY refuses
          add('active_y' .. year, 0 - tonumber(oa), 3)
          add('jobs_created_y' .. year, 0 - tonumber(oj), 3)
        end
        add('followed_y' .. year, 1, 3)
        add('active_y' .. year, act, 3)
        add('jobs_created_y' .. year, jobs, 3)
        redis.call('HSET', pk, 'fu' .. year, v)
      else
        add(f, v, mode)
      end
    end
    redis.call('SADD', KEYS[1], cell)
    redis.call('SADD', KEYS[2], t)
    if d > last_day then last_day = d end
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[3], 'applied', applied)
  redis.call('HSET', KEYS[3], 'as_of', last_day)
end
return missing
