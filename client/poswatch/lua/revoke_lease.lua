-- revoke_lease: the watchdog withdraws the live lease on a position (closure, reaping, operator).
-- KEYS: 1 lease, 2 leases, 3 events, 4 health, 5 fence
-- ARGV: 1 member, 2 reason, 3 channel, 4 fencing token
-- Reply: 1 if a live lease was revoked, else 0
want_count(KEYS, 5, ARGV, 4)
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':lease:' .. member, 'lease key')
want_equal(KEYS[2], 'leases key', prefix .. ':leases')
want_equal(KEYS[3], 'events key', prefix .. ':events')
want_equal(KEYS[4], 'health key', prefix .. ':health')
want_reason(ARGV[2])
want_equal(ARGV[3], 'channel', KEYS[3])
want_fence(KEYS[5], ARGV[4], prefix)
return revoke(KEYS[1], KEYS[2], KEYS[3], ARGV[3], events_maxlen(KEYS[4]), ARGV[1], ARGV[2], now_ms())
