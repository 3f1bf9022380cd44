-- Settle, atomic and idempotent per request id: release the reservation (if Redis still
-- holds it) and add the actual cost and tokens; a settle seen before changes nothing.
-- KEYS: leases zset, res:<rid>, done:<rid>.
-- ARGV: prefix, rid, "<cost (nanos)> <tokens>", then per account "<tpm (-1 none)> <seed
--   spend (nanos)> <budget reset boundary (ms, 0 none)> <id>".
-- Reply: {0 | 1 (seen before), spend per account}.
local prefix, rid = ARGV[1], ARGV[2]
local cost, tokens = string.match(ARGV[3], '^(%S+) (%S+)$')
cost, tokens = tonumber(cost), tonumber(tokens)
local n = #ARGV - 3
local ids, tpms, seeds, resets = {}, {}, {}, {}
for i = 1, n do
  local tpm, seed, reset, id = string.match(ARGV[3 + i], '^(%S+) (%S+) (%S+) (.*)$')
  ids[i], tpms[i], seeds[i], resets[i] = id, tonumber(tpm), seed, tonumber(reset)
end
local now = now_ms()
local seen = redis.call('EXISTS', KEYS[3])
local admitted, held = now, {}
if seen == 0 then
  local res = take(prefix, KEYS[1], rid)
  if res then
    admitted = res[3]
    for _, id in ipairs(res[4]) do held[id] = true end
    -- Accounts the reservation holds that this settle does not name (none, normally).
    for i = 1, n do held[ids[i]] = nil end
    for id in pairs(held) do unreserve(prefix .. 'a:' .. id, res[1], res[2]) end
    held = {}
    for _, id in ipairs(res[4]) do held[id] = res end
  end
  redis.call('SET', KEYS[3], 1, 'PX', 86400000)
end
local out = {seen}
for i = 1, n do
  local id = ids[i]
  local a = prefix .. 'a:' .. id
  local v = redis.call('HMGET', a, 'spend', 'reset')
  local spend = prepare(a, v[1], v[2], seeds[i], resets[i])
  if seen == 0 then
    local res = held[id]
    if res then unreserve(a, res[1], res[2]) end
    if cost ~= 0 then spend = redis.call('HINCRBY', a, 'spend', cost) end
    if tokens > 0 and tpms[i] >= 0 and admitted > now - WINDOW_MS then
      redis.call('ZADD', prefix .. 't:' .. id, admitted, rid .. ':' .. tokens)
      redis.call('HINCRBY', a, 'wtok', tokens)
    end
  end
  out[i + 1] = spend
end
return out
