-- revoke_lease: the watchdog withdraws the live lease on a position (closure, reaping, operator).
-- KEYS: 1 lease, 2 leases, 3 events, 4 health
-- ARGV: 1 member, 2 reason, 3 channel
-- Reply: 1 if a live lease was revoked, else 0
return revoke(KEYS[1], KEYS[2], KEYS[3], ARGV[3], events_maxlen(KEYS[4]), ARGV[1], ARGV[2], now_ms())
