-- renew_lead: prove this instance still leads and extend its lease (also the reaper's check
-- right before each cancel). Leads = the stored fence is its token AND the lease is its own or
-- has lapsed with nobody taking it (then it is taken back: no other token was handed out).
-- KEYS: 1 leader, 2 fence, 3 instances
-- ARGV: 1 instance, 2 token, 3 lease ttl_ms, 4 registration ttl_ms
-- Reply: {1, ""} still leading (lease extended); {0, holder or ""} not leading any more
want_count(KEYS, 3, ARGV, 4)
local prefix = prefix_of(KEYS[1], ':leader', 'leader key')
want_equal(KEYS[2], 'fence key', prefix .. ':fence')
want_equal(KEYS[3], 'instances key', prefix .. ':instances')
want_text(ARGV[1], 'instance', MAX_TEXT)
want_int(ARGV[2], 'token', 1, MAX_INT)
local ttl = want_int(ARGV[3], 'lease ttl_ms', 1, MAX_AGE_LIMIT_MS)
local reg_ttl = want_int(ARGV[4], 'registration ttl_ms', 1, MAX_AGE_LIMIT_MS)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + reg_ttl, ARGV[1])
local holder = redis.call('GET', KEYS[1])
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {0, holder or ''} end
if holder and holder ~= ARGV[1] then return {0, holder} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return {1, ''}
