-- begin: before the bot cancels its stop. ALLOW with a lease (fencing token) or VETO with a reason.
-- KEYS: 1 lease, 2 lease_seq, 3 leases, 4 events
-- ARGV: 1 member "SYMBOL:SIDE", 2 holder, 3 ttl_ms, 4 max_age_ms ("" = health's), 5 channel,
--       6 health key, 7 position key, 8 reaping key
-- Read-only keys travel in ARGV: Redis checks every KEYS entry of EVALSHA as read-write, and a
-- bot's ACL (docs/redis-acl.conf) keeps positions, health and reaping markers read-only.
-- Reply: {allowed 0|1, reason, token (0 on veto), age_ms (-1 unknown), position hash (flat)}
-- Every argument is checked before anything is written (prelude: argument checks); the keys
-- must be this member's keys of one account.
want_count(KEYS, 4, ARGV, 8)
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':lease:' .. member, 'lease key')
want_equal(KEYS[2], 'lease_seq key', prefix .. ':lease_seq')
want_equal(KEYS[3], 'leases key', prefix .. ':leases')
want_equal(KEYS[4], 'events key', prefix .. ':events')
local holder = want_text(ARGV[2], 'holder', 128)
local ttl_ms = want_int(ARGV[3], 'ttl_ms', 1, MAX_LEASE_TTL_MS)
want_max_age(ARGV[4])
want_equal(ARGV[5], 'channel', KEYS[4])
want_equal(ARGV[6], 'health key', prefix .. ':health')
want_equal(ARGV[7], 'position key', prefix .. ':pos:' .. member)
want_equal(ARGV[8], 'reaping key', prefix .. ':reaping:' .. member)
local now = now_ms()
local allowed, reason, age, flat, h = judge(ARGV[6], ARGV[7], ARGV[8], KEYS[1], ARGV[4], now)
local maxlen = maxlen_of(h['events_maxlen'])
if allowed == 0 then
  emit(KEYS[4], ARGV[5], maxlen, now, {'kind', 'veto', 'op', 'begin', 'position', member,
    'holder', holder, 'reason', reason, 'age_ms', tostring(age)})
  return {0, reason, 0, age, flat}
end
-- The token first: a lease_seq that is not an integer fails the call before anything is written.
local token = redis.call('INCR', KEYS[2])
local old = as_map(redis.call('HGETALL', KEYS[1]))
if old['token'] ~= nil and old['released_ms'] == nil and old['revoked'] == nil then
  -- The previous holder let its lease run out without end(): make that visible.
  emit(KEYS[4], ARGV[5], maxlen, now, {'kind', 'lease', 'action', 'expired', 'position', member,
    'token', old['token'], 'holder', old['holder'] or '', 'begin_ms', old['begin_ms'] or ''})
end
local expires = now + ttl_ms
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', tostring(token), 'holder', holder, 'position', member,
  'begin_ms', tostring(now), 'expires_ms', tostring(expires), 'ttl_ms', tostring(ttl_ms),
  'pos_version', as_map(flat)['version'] or '0')
redis.call('PEXPIRE', KEYS[1], ttl_ms + LEASE_LINGER_MS)
redis.call('ZADD', KEYS[3], expires, member)
emit(KEYS[4], ARGV[5], maxlen, now, {'kind', 'lease', 'action', 'begin', 'position', member,
  'token', tostring(token), 'holder', holder, 'ttl_ms', tostring(ttl_ms)})
return {1, 'ok', token, age, flat}
