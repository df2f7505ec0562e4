-- heartbeat: rewrite the health hash with a TTL and rotate the epoch token in one step.
-- The epoch token is rewritten on every beat; if the stored one is not the one we wrote last,
-- Redis lost our data (restart without persistence, FLUSHALL, failover, restore of an old
-- snapshot) or another watchdog writes this account: the caller republishes everything.
-- KEYS: 1 health, 2 epoch
-- ARGV: 1 ttl_ms, 2 expected token ("" on the first beat), 3 new token, 4 watchdog wall ms,
--       5.. field, value pairs
-- Reply: {lost 0|1, previous token or ""}
if #KEYS ~= 2 then reject('call', 'expected 2 keys', #KEYS) end
local prefix = prefix_of(KEYS[1], ':health', 'health key')
want_equal(KEYS[2], 'epoch key', prefix .. ':epoch')
local ttl_ms = want_int(ARGV[1], 'ttl_ms', 1, MAX_AGE_LIMIT_MS)
want_text(ARGV[2], 'expected token', MAX_TEXT, true)
want_text(ARGV[3], 'new token', MAX_TEXT)
local wall_ms = want_int(ARGV[4], 'wall ms', 0, MAX_INT)
want_pairs(ARGV, 5, 'health')
local now = now_ms()
redis.call('DEL', KEYS[1])
if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
redis.call('HSET', KEYS[1], 'clock_offset_ms', tostring(now - wall_ms), 'beat_ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl_ms)
local prev = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[3])
if prev == ARGV[2] and prev ~= '' then return {0, prev} end
return {1, prev}
