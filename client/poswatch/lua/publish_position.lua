-- publish_position: compare-and-set on version. A view whose version is not greater than the
-- stored one is refused, so a late REST answer can never overwrite a newer stream fact.
-- A closed position keeps its hash with a TTL; a closure revokes the live lease atomically and
-- drops the guard's fields (protection, unprotected_since_ms, guard_order: set_protection.lua):
-- a closed position has no protection, and whoever closes it (a takeover's republish, a
-- restarted watchdog, a write again after a failover lost it) may never have judged it open,
-- so may never clear them otherwise (docs/HA.md).
-- A hash written under an older fence (another, earlier leader) is replaced whatever its
-- version: versions order one writer's views, the fence orders writers (docs/HA.md).
-- KEYS: 1 position, 2 positions, 3 lease, 4 leases, 5 events, 6 health, 7 fence
-- ARGV: 1 member, 2 version, 3 state, 4 knowledge, 5 amt, 6 entry, 7 source, 8 as_of_ms,
--       9 verified_ms, 10 reason, 11 closed_ttl_ms, 12 channel, 13 symbol, 14 side,
--       15 clear_firing ("1": drop the firing_* fields an earlier run may have left, mark_firing.lua),
--       16 fencing token
-- Reply: {written 0|1, stored version}
want_count(KEYS, 7, ARGV, 16)
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':pos:' .. member, 'position key')
want_equal(KEYS[2], 'positions key', prefix .. ':positions')
want_equal(KEYS[3], 'lease key', prefix .. ':lease:' .. member)
want_equal(KEYS[4], 'leases key', prefix .. ':leases')
want_equal(KEYS[5], 'events key', prefix .. ':events')
want_equal(KEYS[6], 'health key', prefix .. ':health')
local version = want_int(ARGV[2], 'version', 1, MAX_INT)
want_one_of(ARGV[3], 'state', {'open', 'closed', 'unknown'})
want_one_of(ARGV[4], 'knowledge', {'confirmed', 'suspect', 'expired', 'unknown'})
want_decimal(ARGV[5], 'amt')
want_decimal(ARGV[6], 'entry')
want_one_of(ARGV[7], 'source', {'stream', 'rest'})
want_int(ARGV[8], 'as_of_ms', -MAX_INT, MAX_INT)
want_int(ARGV[9], 'verified_ms', -MAX_INT, MAX_INT)
want_reason(ARGV[10])
local closed_ttl = want_int(ARGV[11], 'closed_ttl_ms', 1, MAX_INT)
want_equal(ARGV[12], 'channel', KEYS[5])
want_equal(ARGV[1], 'member', ARGV[13] .. ':' .. ARGV[14])
want_one_of(ARGV[15], 'clear_firing', {'0', '1'})
local fence = want_fence(KEYS[7], ARGV[16], prefix)
local held = redis.call('HMGET', KEYS[1], 'version', 'fence')
local stored = held[1]
-- A stored version that is not an integer (hand-edited) is older than any real one.
if stored and (stored_int(held[2]) or 0) >= fence and (stored_int(stored) or -1) >= version then
  return {0, stored}
end
local now = now_ms()
local state = ARGV[3]
redis.call('HSET', KEYS[1], 'state', state, 'knowledge', ARGV[4], 'amt', ARGV[5], 'entry', ARGV[6],
  'source', ARGV[7], 'as_of_ms', ARGV[8], 'verified_ms', ARGV[9], 'reason', ARGV[10],
  'version', ARGV[2], 'symbol', ARGV[13], 'side', ARGV[14], 'updated_ms', tostring(now),
  'fence', ARGV[16])
if ARGV[15] == '1' then
  redis.call('HDEL', KEYS[1], 'firing_algo_id', 'firing_status', 'firing_since_ms', 'firing_child_id')
end
bump_rev(KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
if state == 'closed' then
  redis.call('HDEL', KEYS[1], 'protection', 'unprotected_since_ms', 'guard_order')
  redis.call('PEXPIRE', KEYS[1], closed_ttl)
  revoke(KEYS[3], KEYS[4], KEYS[5], ARGV[12], events_maxlen(KEYS[6]), ARGV[1], 'position_closed', now)
else
  redis.call('PERSIST', KEYS[1])
end
return {1, ARGV[2]}
