-- register_instance: a standby's round when it does not try to take the lead (an instance at
-- its fair share of several accounts, docs/HA.md): it only renews its registration in the
-- account's instances set, so `status` lists it as a standby of every account it watches.
-- KEYS: 1 leader, 2 instances
-- ARGV: 1 instance, 2 registration ttl_ms
-- Reply: the lease holder ('' when nobody holds a live lease)
want_count(KEYS, 2, ARGV, 2)
local prefix = prefix_of(KEYS[1], ':leader', 'leader key')
want_equal(KEYS[2], 'instances key', prefix .. ':instances')
want_text(ARGV[1], 'instance', MAX_TEXT)
local reg_ttl = want_int(ARGV[2], 'registration ttl_ms', 1, MAX_AGE_LIMIT_MS)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + reg_ttl, ARGV[1])
return redis.call('GET', KEYS[1]) or ''
