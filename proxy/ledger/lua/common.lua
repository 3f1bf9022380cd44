-- Shared by admit.lua and settle.lua (prepended when the scripts are loaded).
-- Keys, under ARGV[1] (the prefix): a:<account> (hash: spend, reserved, inflight, tokres,
-- wtok, reset), r:<account> (rpm window: zset of request ids by admission ms), t:<account>
-- (tpm window: zset of "<rid>:<tokens>" by admission ms), res:<rid> (a reservation), the
-- leases zset (KEYS[1]: rid by lease expiry ms) and done:<rid> (a settled request id).
-- Money fields change only through HINCRBY (int64 arithmetic in Redis: Lua would print a
-- number of 1e14 or more in exponent notation); small counters are written with HSET.
local WINDOW_MS = 60000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(text)
  local out = {}
  for part in string.gmatch(text, '[^\n]+') do out[#out + 1] = part end
  return out
end

-- The reservation under rid, removed: {cost, tokens, admitted ms, account ids} or nil.
local function take(prefix, leases, rid)
  local key = prefix .. 'res:' .. rid
  local res = redis.call('HMGET', key, 'cost', 'tokens', 'admitted', 'accounts')
  redis.call('ZREM', leases, rid)
  if not res[1] then return nil end
  redis.call('DEL', key)
  return {tonumber(res[1]), tonumber(res[2]), tonumber(res[3]), split(res[4])}
end

-- Give an account back what a reservation held on it.
local function unreserve(a, cost, tokens)
  local v = redis.call('HMGET', a, 'inflight', 'tokres')
  redis.call('HSET', a, 'inflight', (tonumber(v[1]) or 0) - 1,
    'tokres', (tonumber(v[2]) or 0) - tokens)
  if cost ~= 0 then redis.call('HINCRBY', a, 'reserved', 0 - cost) end
end

-- Reclaim the reservations of replicas that stopped renewing their leases (died).
local function sweep(prefix, leases, now)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 64)
  for _, rid in ipairs(expired) do
    local res = take(prefix, leases, rid)
    if res then
      for _, id in ipairs(res[4]) do unreserve(prefix .. 'a:' .. id, res[1], res[2]) end
    end
  end
end

-- An account missing from Redis (a Redis restarted empty) is seeded with the spend the
-- gateway holds; a budget period that ended since Redis last saw it starts at 0. ``spend``
-- and ``stored`` are what HMGET read; returns the spend that holds now.
local function prepare(a, spend, stored, seed, reset)
  if not spend then
    if reset > 0 then
      redis.call('HSET', a, 'spend', seed, 'reset', reset)
    else
      redis.call('HSET', a, 'spend', seed)
    end
    return tonumber(seed)
  end
  if reset > 0 and reset > (tonumber(stored) or 0) then
    redis.call('HSET', a, 'spend', 0, 'reset', reset)
    return 0
  end
  return tonumber(spend)
end

-- Settled tokens in the tpm window, pruning those that left it.
local function window_tokens(a, t, wtok, now)
  local cutoff = now - WINDOW_MS
  local old = redis.call('ZRANGEBYSCORE', t, '-inf', cutoff)
  if #old == 0 then return tonumber(wtok) or 0 end
  local freed = 0
  for _, member in ipairs(old) do
    freed = freed + tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', t, '-inf', cutoff)
  return redis.call('HINCRBY', a, 'wtok', 0 - freed)
end
