-- One admission step of one room, at the pace its policy sets now:
-- 1. forget expired and abandoned tokens;
-- 2. once the sale has opened, give the pre-queue a uniformly random order (Fisher-Yates,
--    seeded by the caller) ahead of everyone who came later: scores below the first
--    arrival's sequence number 1;
-- 3. unless paused or before the sale, move the head of the line to ACTIVE, never above
--    max_active and never faster than admit_per_second.
-- KEYS: config, waiting, seen, active, prequeue, bucket
-- ARGV: now_ms, active_ttl_ms, grace_ms, token_prefix, user_prefix, batch, seed, keep_ms
-- Returns {admitted, expired, abandoned, active, waiting, released, max_active, admitting (1/0)},
-- or {} when Redis holds no policy for the room
local now = tonumber(ARGV[1])
local batch = tonumber(ARGV[6])
local config = redis.call('HMGET', KEYS[1], 'admit_per_second', 'max_active', 'sale_opens_at', 'paused')
if not config[1] then return {} end
local rate, max_active, sale = tonumber(config[1]), tonumber(config[2]), tonumber(config[3])

local function forget(token)
  local key = ARGV[4] .. token
  local user = redis.call('HGET', key, 'user')
  if user and redis.call('GET', ARGV[5] .. user) == token then
    redis.call('DEL', ARGV[5] .. user)
  end
  redis.call('DEL', key)
end

local function keep(token, ms)
  local key = ARGV[4] .. token
  local user = redis.call('HGET', key, 'user')
  if user then redis.call('PEXPIRE', ARGV[5] .. user, ms) end
  redis.call('PEXPIRE', key, ms)
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, batch)
for _, token in ipairs(expired) do
  redis.call('ZREM', KEYS[4], token)
  forget(token)
end

local abandoned = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, batch)
for _, token in ipairs(abandoned) do
  redis.call('ZREM', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  forget(token)
end

local selling = sale == nil or now >= sale
local released = 0
if selling then
  local early = redis.call('ZRANGE', KEYS[5], 0, -1)
  local n = #early
  if n > 0 then
    math.randomseed(tonumber(ARGV[7]))
    for i = n, 2, -1 do
      local j = math.random(i)
      early[i], early[j] = early[j], early[i]
    end
    for i, token in ipairs(early) do
      redis.call('ZADD', KEYS[2], i - n, token)
      redis.call('ZADD', KEYS[3], now, token)
      keep(token, tonumber(ARGV[8]))
    end
    redis.call('DEL', KEYS[5])
    released = n
  end
end

local admitted = 0
local admitting = selling and config[4] ~= '1'
if admitting then
  local state = redis.call('HMGET', KEYS[6], 'allowance', 'at')
  local allowance = tonumber(state[1]) or rate
  local last = tonumber(state[2]) or now
  allowance = math.min(rate, allowance + (now - last) * rate / 1000)
  local room = max_active - redis.call('ZCARD', KEYS[4])
  local count = math.min(math.floor(allowance), room, batch)
  if count > 0 then
    local heads = redis.call('ZRANGE', KEYS[2], 0, count - 1)
    local expires = now + tonumber(ARGV[2])
    for _, token in ipairs(heads) do
      redis.call('ZREM', KEYS[2], token)
      redis.call('ZREM', KEYS[3], token)
      redis.call('ZADD', KEYS[4], expires, token)
      keep(token, tonumber(ARGV[2]) + 1000)
      admitted = admitted + 1
    end
    allowance = allowance - admitted
  end
  redis.call('HSET', KEYS[6], 'allowance', allowance, 'at', now)
end
return {admitted, #expired, #abandoned, redis.call('ZCARD', KEYS[4]),
        redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[5]), released, max_active,
        admitting and 1 or 0}
