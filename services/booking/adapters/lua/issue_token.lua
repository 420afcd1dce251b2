-- Give the user their live token in this room again, or a new one: into the pre-queue
-- before the sale opens, else at the back of the line.
-- KEYS: config, seq, waiting, seen, active, prequeue, user_key
-- ARGV: new_token, user_id, now_ms, token_prefix, keep_ms
-- Returns {'NO_ROOM'} | {'CLOSED'} |
--   {token, status, position (-1: none), expires, created, rate, first (1: nobody waited before)}
local now = tonumber(ARGV[3])
local config = redis.call('HMGET', KEYS[1], 'admit_per_second', 'queue_opens_at', 'sale_opens_at')
local rate = config[1]
if not rate then return {'NO_ROOM'} end
local opens, sale = tonumber(config[2]), tonumber(config[3])
if opens and now < opens then return {'CLOSED'} end
local keep = tonumber(ARGV[5])
local existing = redis.call('GET', KEYS[7])
if existing then
  local expires = redis.call('ZSCORE', KEYS[5], existing)
  if expires and tonumber(expires) > now then
    return {existing, 'ACTIVE', 0, expires, 0, rate, 0}
  end
  if redis.call('ZSCORE', KEYS[6], existing) then
    return {existing, 'PRE_QUEUE', -1, '', 0, rate, 0}
  end
  local rank = redis.call('ZRANK', KEYS[3], existing)
  if rank then
    redis.call('ZADD', KEYS[4], now, existing)
    redis.call('PEXPIRE', KEYS[7], keep)
    redis.call('PEXPIRE', ARGV[4] .. existing, keep)
    return {existing, 'WAITING', rank + 1 + redis.call('ZCARD', KEYS[6]), '', 0, rate, 0}
  end
end
local token = ARGV[1]
local status, position = 'WAITING', -1
local first = redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[6]) == 0
if sale and now < sale then
  status = 'PRE_QUEUE'
  keep = keep + sale - now
  -- In order of arrival (only to make a seeded shuffle reproducible: the order is not kept).
  redis.call('ZADD', KEYS[6], redis.call('INCR', KEYS[2]), token)
else
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[2]), token)
  redis.call('ZADD', KEYS[4], now, token)
  -- Pre-queue tokens not yet given their places are ahead of everyone arriving now.
  position = redis.call('ZRANK', KEYS[3], token) + 1 + redis.call('ZCARD', KEYS[6])
end
redis.call('SET', KEYS[7], token, 'PX', keep)
redis.call('HSET', ARGV[4] .. token, 'user', ARGV[2])
redis.call('PEXPIRE', ARGV[4] .. token, keep)
return {token, status, position, '', 1, rate, first and 1 or 0}
