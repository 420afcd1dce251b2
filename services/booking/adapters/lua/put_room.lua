-- Install a room's policy unless a newer one is there already (versions only grow).
-- KEYS: config
-- ARGV: version, admit_per_second, max_active, queue_opens_at_ms|'', sale_opens_at_ms|'', paused (1/0)
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'admit_per_second', ARGV[2], 'max_active', ARGV[3],
           'queue_opens_at', ARGV[4], 'sale_opens_at', ARGV[5], 'paused', ARGV[6])
return 1
