-- Where a token stands; a WAITING token that asks is marked as still present.
-- KEYS: waiting, seen, active
-- ARGV: token, now_ms, token_key_prefix, touch (1/0)
local now = tonumber(ARGV[2])
local user = redis.call('HGET', ARGV[3] .. ARGV[1], 'user')
if not user then return false end
local expires = redis.call('ZSCORE', KEYS[3], ARGV[1])
if expires then
  if tonumber(expires) > now then return {user, 'ACTIVE', 0, expires} end
  return false
end
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
if not rank then return false end
if ARGV[4] == '1' then redis.call('ZADD', KEYS[2], now, ARGV[1]) end
return {user, 'WAITING', rank + 1, ''}
