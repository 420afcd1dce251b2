-- Where a token stands in its room; a WAITING token that asks is marked as still present.
-- KEYS: config, waiting, seen, active, prequeue
-- ARGV: token, now_ms, token_prefix, touch (1/0), keep_ms, user_prefix
-- Returns false | {user, status, position (-1: none), expires, rate}
local now = tonumber(ARGV[2])
local key = ARGV[3] .. ARGV[1]
local user = redis.call('HGET', key, 'user')
if not user then return false end
local rate = redis.call('HGET', KEYS[1], 'admit_per_second') or '1'
local expires = redis.call('ZSCORE', KEYS[4], ARGV[1])
if expires then
  if tonumber(expires) > now then return {user, 'ACTIVE', 0, expires, rate} end
  return false
end
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then return {user, 'PRE_QUEUE', -1, '', rate} end
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
if not rank then return false end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[5])
  redis.call('PEXPIRE', ARGV[6] .. user, ARGV[5])
end
return {user, 'WAITING', rank + 1 + redis.call('ZCARD', KEYS[5]), '', rate}
