#!lua flags=no-writes
-- check: the read-only verdict (same rules as begin, takes no lease, writes nothing).
-- KEYS: 1 health, 2 position, 3 reaping, 4 lease
-- ARGV: 1 max_age_ms ("" or 0 = health.veto_max_age_ms)
-- Reply: {allowed 0|1, reason, lease 0, age_ms (-1 unknown), position hash (flat)}
want_count(KEYS, 4, ARGV, 1)
local prefix = prefix_of(KEYS[1], ':health', 'health key')
local member = want_member(string.sub(KEYS[2] or '', #prefix + 6), 'position key')
want_equal(KEYS[2], 'position key', prefix .. ':pos:' .. member)
want_equal(KEYS[3], 'reaping key', prefix .. ':reaping:' .. member)
want_equal(KEYS[4], 'lease key', prefix .. ':lease:' .. member)
want_max_age(ARGV[1])
local now = now_ms()
local allowed, reason, age, flat = judge(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], now)
return {allowed, reason, 0, age, flat}
