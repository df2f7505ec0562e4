#!lua flags=no-writes
-- check: the read-only verdict (same rules as begin, takes no lease, writes nothing).
-- KEYS: 1 health, 2 position, 3 reaping, 4 lease
-- ARGV: 1 max_age_ms ("" or 0 = health.veto_max_age_ms)
-- Reply: {allowed 0|1, reason, lease 0, age_ms (-1 unknown), position hash (flat)}
local now = now_ms()
local allowed, reason, age, flat = judge(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], now)
return {allowed, reason, 0, age, flat}
