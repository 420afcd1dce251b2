-- Remove a token wherever it stands (payment done or expiry event replayed); idempotent.
-- KEYS: waiting, seen, active
-- ARGV: token, token_prefix, user_prefix
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local key = ARGV[2] .. ARGV[1]
local user = redis.call('HGET', key, 'user')
if user and redis.call('GET', ARGV[3] .. user) == ARGV[1] then
  redis.call('DEL', ARGV[3] .. user)
end
return redis.call('DEL', key)
