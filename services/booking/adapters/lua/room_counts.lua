-- How many wait in a room (pre-queue included) and how many are active now.
-- KEYS: waiting, prequeue, active
-- ARGV: now_ms
return {redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]),
        redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[1], '+inf')}
