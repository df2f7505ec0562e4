-- begin: before the bot cancels its stop. ALLOW with a lease (fencing token) or VETO with a reason.
-- KEYS: 1 health, 2 position, 3 reaping, 4 lease, 5 lease_seq, 6 leases, 7 events
-- ARGV: 1 member "SYMBOL:SIDE", 2 holder, 3 ttl_ms, 4 max_age_ms ("" = health's), 5 channel
-- Reply: {allowed 0|1, reason, token (0 on veto), age_ms (-1 unknown), position hash (flat)}
local now = now_ms()
local member, holder, ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
if ttl_ms == nil or ttl_ms <= 0 then return redis.error_reply('ERR ttl_ms must be a positive integer') end
local allowed, reason, age, flat, h = judge(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[4], now)
local maxlen = tonumber(h['events_maxlen']) or DEFAULT_MAXLEN
if allowed == 0 then
  emit(KEYS[7], ARGV[5], maxlen, now, {'kind', 'veto', 'op', 'begin', 'position', member,
    'holder', holder, 'reason', reason, 'age_ms', tostring(age)})
  return {0, reason, 0, age, flat}
end
local old = as_map(redis.call('HGETALL', KEYS[4]))
if old['token'] ~= nil and old['released_ms'] == nil and old['revoked'] == nil then
  -- The previous holder let its lease run out without end(): make that visible.
  emit(KEYS[7], ARGV[5], maxlen, now, {'kind', 'lease', 'action', 'expired', 'position', member,
    'token', old['token'], 'holder', old['holder'] or '', 'begin_ms', old['begin_ms'] or ''})
end
local token = redis.call('INCR', KEYS[5])
local expires = now + ttl_ms
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'token', tostring(token), 'holder', holder, 'position', member,
  'begin_ms', tostring(now), 'expires_ms', tostring(expires), 'ttl_ms', tostring(ttl_ms),
  'pos_version', as_map(flat)['version'] or '0')
redis.call('PEXPIRE', KEYS[4], ttl_ms + LEASE_LINGER_MS)
redis.call('ZADD', KEYS[6], expires, member)
emit(KEYS[7], ARGV[5], maxlen, now, {'kind', 'lease', 'action', 'begin', 'position', member,
  'token', tostring(token), 'holder', holder, 'ttl_ms', tostring(ttl_ms)})
return {1, 'ok', token, age, flat}
