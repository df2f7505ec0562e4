-- acquire_lead: become the account's leader if no live lease is held (SET NX PX), with a new
-- fencing token. The token is max(stored fence + 1, Redis TIME in ms): it grows at every
-- change of leader, and after a failover to a replica that lost the last writes (the fence
-- key older or gone) it still exceeds every token handed out before, because those were
-- issued at least the lease TTL earlier on a clock of the same epoch (docs/HA.md, token).
-- The caller's own live lease is taken again with a new token (it lost its fence: a
-- FENCED refusal after Redis lost the key).
-- Every call also registers the caller in the instances set (standbys included, status).
-- KEYS: 1 leader, 2 fence, 3 instances
-- ARGV: 1 instance, 2 lease ttl_ms, 3 registration ttl_ms
-- Reply: {1, token, ""} on success, {0, 0, holder} when another instance leads
want_count(KEYS, 3, ARGV, 3)
local prefix = prefix_of(KEYS[1], ':leader', 'leader key')
want_equal(KEYS[2], 'fence key', prefix .. ':fence')
want_equal(KEYS[3], 'instances key', prefix .. ':instances')
want_text(ARGV[1], 'instance', MAX_TEXT)
local ttl = want_int(ARGV[2], 'lease ttl_ms', 1, MAX_AGE_LIMIT_MS)
local reg_ttl = want_int(ARGV[3], 'registration ttl_ms', 1, MAX_AGE_LIMIT_MS)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + reg_ttl, ARGV[1])
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, 0, holder} end
local stored = stored_int(redis.call('GET', KEYS[2])) or 0
local token = math.max(stored + 1, now)
redis.call('SET', KEYS[2], string.format('%d', token))
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return {1, string.format('%d', token), ''}
