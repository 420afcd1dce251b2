-- One admission step: forget expired and abandoned tokens, then move the head of
-- the line to ACTIVE, never above max_active and never faster than the rate.
-- KEYS: waiting, seen, active, bucket
-- ARGV: now_ms, max_active, admit_per_second, active_ttl_ms, grace_ms, token_prefix, user_prefix, batch
local now = tonumber(ARGV[1])
local max_active = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local batch = tonumber(ARGV[8])

local function forget(token)
  local key = ARGV[6] .. token
  local user = redis.call('HGET', key, 'user')
  if user and redis.call('GET', ARGV[7] .. user) == token then
    redis.call('DEL', ARGV[7] .. user)
  end
  redis.call('DEL', key)
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, batch)
for _, token in ipairs(expired) do
  redis.call('ZREM', KEYS[3], token)
  forget(token)
end

local abandoned = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, batch)
for _, token in ipairs(abandoned) do
  redis.call('ZREM', KEYS[1], token)
  redis.call('ZREM', KEYS[2], token)
  forget(token)
end

local state = redis.call('HMGET', KEYS[4], 'allowance', 'at')
local allowance = tonumber(state[1]) or rate
local last = tonumber(state[2]) or now
allowance = math.min(rate, allowance + (now - last) * rate / 1000)
local room = max_active - redis.call('ZCARD', KEYS[3])
local count = math.min(math.floor(allowance), room, batch)
local admitted = 0
if count > 0 then
  local heads = redis.call('ZRANGE', KEYS[1], 0, count - 1)
  local expires = now + tonumber(ARGV[4])
  for _, token in ipairs(heads) do
    redis.call('ZREM', KEYS[1], token)
    redis.call('ZREM', KEYS[2], token)
    redis.call('ZADD', KEYS[3], expires, token)
    admitted = admitted + 1
  end
  allowance = allowance - admitted
end
redis.call('HSET', KEYS[4], 'allowance', allowance, 'at', now)
return {admitted, #expired, #abandoned, redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[1])}
