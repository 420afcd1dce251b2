-- Remove a token wherever it stands (payment done or expiry event replayed); idempotent.
-- KEYS: waiting, seen, active, prequeue
-- ARGV: token, token_prefix, user_prefix
for _, set in ipairs(KEYS) do redis.call('ZREM', set, ARGV[1]) end
local key = ARGV[2] .. ARGV[1]
local user = redis.call('HGET', key, 'user')
if user and redis.call('GET', ARGV[3] .. user) == ARGV[1] then
  redis.call('DEL', ARGV[3] .. user)
end
return redis.call('DEL', key)
