-- confirm: after the bot cancelled its stop, before it creates the new one.
-- VETO only on positive knowledge of a closure: the position is closed by a fresh fact newer
-- than the one begin relied on (position_closed), or the watchdog revoked the lease
-- (lease_revoked: an act on this very lease, taken atomically with a fresh closure or by an
-- operator; it does not age like a state read). Down, unknown or stale, an aged closure
-- included (rule 2: old data is not knowledge): ALLOW 'unverified' (an orphaned stop is cheaper
-- than a naked position, and the reaper removes it once a fresh read proves the position flat).
-- KEYS: 1 lease, 2 events
-- ARGV: 1 member, 2 token, 3 max_age_ms ("" = health's), 4 channel, 5 health key, 6 position key
-- (read-only keys travel in ARGV, see begin.lua)
-- Reply: {allowed 0|1, reason, token, age_ms (-1 unknown), position hash (flat)}
want_count(KEYS, 2, ARGV, 6)
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':lease:' .. member, 'lease key')
want_equal(KEYS[2], 'events key', prefix .. ':events')
local token = ARGV[2]
want_int(token, 'token', 0, MAX_INT)
want_max_age(ARGV[3])
want_equal(ARGV[4], 'channel', KEYS[2])
want_equal(ARGV[5], 'health key', prefix .. ':health')
want_equal(ARGV[6], 'position key', prefix .. ':pos:' .. member)
local now = now_ms()
local flat = redis.call('HGETALL', ARGV[6])
local p = as_map(flat)
local h = as_map(redis.call('HGETALL', ARGV[5]))
local l = as_map(redis.call('HGETALL', KEYS[1]))
local mine = l['token'] == token
local age = age_of(p, tonumber(h['clock_offset_ms']) or 0, now)
local maxlen = maxlen_of(h['events_maxlen'])
-- Without the health hash there is no clock offset to measure age with: nothing is fresh.
local fresh = next(h) ~= nil and age >= 0 and age <= max_age_of(ARGV[3], h['veto_max_age_ms'])
local allowed, reason = 1, 'ok'
if p['state'] == 'closed' and fresh
    and (not mine or (stored_int(p['version']) or 0) > (stored_int(l['pos_version']) or 0)) then
  allowed, reason = 0, 'position_closed'
elseif mine and l['revoked'] ~= nil then
  allowed, reason = 0, 'lease_revoked'
elseif not fresh or p['state'] ~= 'open' then
  reason = 'unverified'
elseif not mine or not lease_held(l, now) then
  reason = 'lease_expired'
end
if mine then redis.call('HSET', KEYS[1], 'confirm_ms', tostring(now), 'confirm_reason', reason) end
if allowed == 0 then
  emit(KEYS[2], ARGV[4], maxlen, now, {'kind', 'veto', 'op', 'confirm', 'position', member,
    'token', token, 'reason', reason, 'age_ms', tostring(age)})
else
  emit(KEYS[2], ARGV[4], maxlen, now, {'kind', 'lease', 'action', 'confirm', 'position', member,
    'token', token, 'reason', reason})
end
return {allowed, reason, tonumber(token) or 0, age, flat}
