-- heartbeat: rewrite the health hash with a TTL and rotate the epoch token in one step.
-- The epoch token is rewritten on every beat; if the stored one is not the one we wrote last,
-- Redis lost our data (restart without persistence, FLUSHALL, failover, restore of an old
-- snapshot) or another watchdog writes this account: the caller republishes everything.
-- KEYS: 1 health, 2 epoch
-- ARGV: 1 ttl_ms, 2 expected token ("" on the first beat), 3 new token, 4 watchdog wall ms,
--       5.. field, value pairs
-- Reply: {lost 0|1, previous token or ""}
local now = now_ms()
redis.call('DEL', KEYS[1])
if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
redis.call('HSET', KEYS[1], 'clock_offset_ms', tostring(now - tonumber(ARGV[4])), 'beat_ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
local prev = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[3])
if prev == ARGV[2] and prev ~= '' then return {0, prev} end
return {1, prev}
