-- Admission, atomic: check every account, then reserve on all of them or on none.
-- KEYS: leases zset, res:<rid>, done:<rid>.
-- ARGV: prefix, rid, "<worst-case cost (nano-dollars)> <tokens> <lease ms> <output price
--   (nanos a token; 0: the output cannot be capped)> <max output> <min output tokens>", then
--   per account "<max budget (nanos, -1 none)> <rpm (-1)> <tpm (-1)> <parallel (-1)> <seed
--   spend (nanos)> <budget reset boundary (ms, 0 none)> <id>" (packed: fewer arguments to
--   encode and to read).
-- Reply: {0, cost, tokens, output cap (-1 none), the first account's windows after this
--   admission (rpm count or -1, oldest ms, tpm tokens or -1, oldest settled ms or 0), now ms,
--   spend per account} admitted;
--   {1} already admitted; {2} already settled; {-1, i, in flight, limit} parallel;
--   {-2, i, count, limit, retry ms} rpm; {-3, i, used, limit, retry ms, tokens} tpm;
--   {-4, i, spend, reserved, budget, room} budget.
-- Order as in the in-memory ledger: budgets first (capping the output to the tightest room
-- when the worst case does not fit but a useful reply does), then per account parallel,
-- rpm and tpm with the tokens that remain.
local prefix, rid = ARGV[1], ARGV[2]
local cost, tokens, lease, per_token, max_out, min_out =
  string.match(ARGV[3], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
cost, tokens, lease = tonumber(cost), tonumber(tokens), tonumber(lease)
per_token, max_out, min_out = tonumber(per_token), tonumber(max_out), tonumber(min_out)
local leases = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 1 then return {1} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
local now = now_ms()
sweep(prefix, leases, now)

local n = #ARGV - 3
local ids, budgets, rpms, tpms, pars, spends, reserveds = {}, {}, {}, {}, {}, {}, {}
local inflights, tokress, wtoks, useds = {}, {}, {}, {}
local tightest, room = 0, 0
for i = 1, n do
  local budget, rpm, tpm, par, seed, reset, id = string.match(
    ARGV[3 + i], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
  ids[i] = id
  budgets[i], rpms[i], tpms[i], pars[i] = tonumber(budget), tonumber(rpm), tonumber(tpm), tonumber(par)
  local a = prefix .. 'a:' .. id
  local v = redis.call('HMGET', a, 'spend', 'reset', 'reserved', 'inflight', 'tokres', 'wtok')
  spends[i] = prepare(a, v[1], v[2], seed, tonumber(reset))
  reserveds[i], inflights[i] = tonumber(v[3]) or 0, tonumber(v[4]) or 0
  tokress[i], wtoks[i] = tonumber(v[5]) or 0, v[6]
  if budgets[i] >= 0 then
    local left = budgets[i] - spends[i] - reserveds[i]
    if left < cost and (tightest == 0 or left < room) then tightest, room = i, left end
  end
end
local cap = -1
if tightest > 0 then
  local refuse = {-4, tightest, spends[tightest], reserveds[tightest], budgets[tightest], room}
  if per_token <= 0 or max_out <= 0 then return refuse end
  local fixed = cost - max_out * per_token
  if room < fixed then return refuse end
  cap = math.min(max_out, math.floor((room - fixed) / per_token))
  if cap < math.max(min_out, 1) then return refuse end
  cost = math.min(room, math.ceil(fixed + cap * per_token))
  tokens = tokens - (max_out - cap)
end

for i = 1, n do
  local id = ids[i]
  local a = prefix .. 'a:' .. id
  local inflight, tokres = inflights[i], tokress[i]
  if pars[i] >= 0 and inflight >= pars[i] then return {-1, i, inflight, pars[i]} end
  local rpm = rpms[i]
  if rpm >= 0 then
    local r = prefix .. 'r:' .. id
    redis.call('ZREMRANGEBYSCORE', r, '-inf', now - WINDOW_MS)
    local count = redis.call('ZCARD', r)
    if count >= rpm then
      -- Until the window has room: the (count - rpm)-th oldest request must leave first.
      local retry = 0
      local entry = redis.call('ZRANGE', r, count - rpm, count - rpm, 'WITHSCORES')
      if entry[2] then retry = tonumber(entry[2]) + WINDOW_MS - now end
      return {-2, i, count, rpm, retry}
    end
  end
  local tpm = tpms[i]
  if tpm >= 0 then
    local t = prefix .. 't:' .. id
    local settled = window_tokens(a, t, wtoks[i], now)
    local used = settled + tokres
    useds[i] = used
    if used > 0 and used + tokens > tpm then
      -- When enough settled tokens leave the window; only in-flight ones in the way: 1 s.
      local excess, freed, retry = used + tokens - tpm, 0, 1000
      local entries = redis.call('ZRANGE', t, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        freed = freed + tonumber(string.match(entries[j], ':(%d+)$'))
        if freed >= excess or (freed == settled and tokres == 0) then
          retry = tonumber(entries[j + 1]) + WINDOW_MS - now
          break
        end
      end
      return {-3, i, used, tpm, retry, tokens}
    end
  end
end

-- Every check passed: reserve on all of them (nothing below can fail).
local out = {0, cost, tokens, cap, -1, 0, -1, 0, now}
for i = 1, n do
  local a = prefix .. 'a:' .. ids[i]
  redis.call('HSET', a, 'inflight', inflights[i] + 1, 'tokres', tokress[i] + tokens)
  if cost ~= 0 then redis.call('HINCRBY', a, 'reserved', cost) end
  if rpms[i] >= 0 then redis.call('ZADD', prefix .. 'r:' .. ids[i], now, rid) end
  out[9 + i] = spends[i]
end
-- The first account's (the key's) windows, for its x-ratelimit-* reply headers.
if n > 0 and rpms[1] >= 0 then
  local r = prefix .. 'r:' .. ids[1]
  out[5] = redis.call('ZCARD', r)
  out[6] = tonumber(redis.call('ZRANGE', r, 0, 0, 'WITHSCORES')[2]) or now
end
if n > 0 and tpms[1] >= 0 then
  out[7] = useds[1] + tokens
  out[8] = tonumber(redis.call('ZRANGE', prefix .. 't:' .. ids[1], 0, 0, 'WITHSCORES')[2]) or 0
end
redis.call('HSET', KEYS[2], 'cost', cost, 'tokens', tokens, 'admitted', now,
  'accounts', table.concat(ids, '\n'))
redis.call('ZADD', leases, now + lease, rid)
return out
