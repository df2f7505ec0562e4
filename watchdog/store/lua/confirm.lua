-- confirm: after the bot cancelled its stop, before it creates the new one.
-- VETO only on positive knowledge of a closure: the position is closed by a fact newer than the
-- one begin relied on (position_closed), or the watchdog revoked the lease (lease_revoked).
-- Down, unknown or stale: ALLOW 'unverified' (an orphaned stop is cheaper than a naked position).
-- KEYS: 1 lease, 2 events
-- ARGV: 1 member, 2 token, 3 max_age_ms ("" = health's), 4 channel, 5 health key, 6 position key
-- (read-only keys travel in ARGV, see begin.lua)
-- Reply: {allowed 0|1, reason, token, age_ms (-1 unknown), position hash (flat)}
local now = now_ms()
local member, token = ARGV[1], ARGV[2]
local flat = redis.call('HGETALL', ARGV[6])
local p = as_map(flat)
local h = as_map(redis.call('HGETALL', ARGV[5]))
local l = as_map(redis.call('HGETALL', KEYS[1]))
local mine = l['token'] == token
local age = age_of(p, tonumber(h['clock_offset_ms']) or 0, now)
local maxlen = tonumber(h['events_maxlen']) or DEFAULT_MAXLEN
local allowed, reason = 1, 'ok'
if p['state'] == 'closed' and (not mine or tonumber(p['version'] or 0) > tonumber(l['pos_version'] or 0)) then
  allowed, reason = 0, 'position_closed'
elseif mine and l['revoked'] ~= nil then
  allowed, reason = 0, 'lease_revoked'
elseif next(h) == nil or p['state'] ~= 'open' then
  reason = 'unverified'
else
  local max_age = tonumber(ARGV[3])
  if max_age == nil or max_age <= 0 then max_age = tonumber(h['veto_max_age_ms']) or 0 end
  if age < 0 or age > max_age then
    reason = 'unverified'
  elseif not mine or l['released_ms'] ~= nil or tonumber(l['expires_ms'] or 0) <= now then
    reason = 'lease_expired'
  end
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
