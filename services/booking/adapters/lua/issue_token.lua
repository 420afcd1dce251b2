-- Give the user their live token again, or a new one at the back of the line.
-- KEYS: seq, waiting, seen, active, user_key
-- ARGV: new_token, user_id, now_ms, token_key_prefix
local now = tonumber(ARGV[3])
local existing = redis.call('GET', KEYS[5])
if existing then
  local expires = redis.call('ZSCORE', KEYS[4], existing)
  if expires and tonumber(expires) > now then
    return {existing, 'ACTIVE', 0, expires, 0}
  end
  local rank = redis.call('ZRANK', KEYS[2], existing)
  if rank then
    redis.call('ZADD', KEYS[3], now, existing)
    return {existing, 'WAITING', rank + 1, '', 0}
  end
end
local token = ARGV[1]
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[1]), token)
redis.call('ZADD', KEYS[3], now, token)
redis.call('SET', KEYS[5], token)
redis.call('HSET', ARGV[4] .. token, 'user', ARGV[2])
return {token, 'WAITING', redis.call('ZRANK', KEYS[2], token) + 1, '', 1}
