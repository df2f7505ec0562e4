-- Shared functions, prepended to every script by watchdog/store/scripts.py (Lua has no include).
-- Times are Redis server time in epoch ms; the watchdog's own clock enters only through
-- health.clock_offset_ms (server ms - watchdog ms, measured at each heartbeat).

local LEASE_LINGER_MS = 60000   -- a lease record outlives its expiry so confirm/end can still see it
local DEFAULT_MAXLEN = 10000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function as_map(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

local function events_maxlen(health_key)
  return tonumber(redis.call('HGET', health_key, 'events_maxlen')) or DEFAULT_MAXLEN
end

-- Append one event to the bounded stream and announce it on the channel of the same name.
local function emit(stream, channel, maxlen, now, fields)
  table.insert(fields, 'at_ms')
  table.insert(fields, tostring(now))
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  local msg = as_map(fields)
  msg['id'] = id
  redis.call('PUBLISH', channel, cjson.encode(msg))
  return id
end

-- A lease is held while it is neither released nor revoked nor past its expiry.
local function lease_held(l, now)
  return l['token'] ~= nil and l['released_ms'] == nil and l['revoked'] == nil
    and tonumber(l['expires_ms'] or 0) > now
end

-- Revoke the live lease on a position (the watchdog's side: closure or operator action).
local function revoke(lease_key, leases_key, stream, channel, maxlen, member, reason, now)
  local l = as_map(redis.call('HGETALL', lease_key))
  if not lease_held(l, now) then return 0 end
  redis.call('HSET', lease_key, 'revoked', reason, 'revoked_ms', tostring(now))
  redis.call('ZREM', leases_key, member)
  emit(stream, channel, maxlen, now, {'kind', 'lease', 'action', 'revoked', 'position', member,
    'token', l['token'], 'holder', l['holder'] or '', 'reason', reason})
  return 1
end

-- How far verified_ms may lie ahead of the watchdog's clock before its age counts as unknown.
-- clock_offset_ms is measured at each beat as (Redis time when the script runs) - (watchdog wall
-- time read before the call): too large by the beat's delay (event loop + one-way latency,
-- ms on a LAN, up to hundreds of ms on a loaded host), so a just-verified fact reads up to that
-- much in the future. Beyond it, the watchdog's clock stepped back (or the field is corrupt):
-- the fact's age is unknown, never 0. docs/PROTOCOL.md §2.
local FUTURE_TOLERANCE_MS = 1000

-- Age of the position's knowledge on the watchdog's clock; -1 when unknown: no verified_ms, one
-- that is not a finite number (Lua's tonumber accepts nan and inf), or one in the future.
local function age_of(p, offset, now)
  local verified = tonumber(p['verified_ms'])
  if verified == nil then return -1 end
  local age = now - offset - verified
  -- age ~= age: nan; the bounds also catch +-inf in verified_ms or clock_offset_ms
  if age ~= age or age < -FUTURE_TOLERANCE_MS or age >= math.huge then return -1 end
  return math.max(0, age)
end

-- Effective max age: the caller's, else the watchdog's veto_max_age_ms, else 0 (all stale).
local function max_age_of(max_age_arg, health_max_age)
  local max_age = tonumber(max_age_arg)
  if max_age == nil or max_age <= 0 then max_age = tonumber(health_max_age) or 0 end
  return max_age
end

-- The verdict shared by check and begin. Precedence (first match wins):
-- watchdog_down > no_position > stale (age unknown or too old, any state) > position_closed >
-- stale (state not open) > stop_triggered > reaping > lease_held > ok. Age wins over state: an
-- old closure is not the truth either (bots drop their trailing stop on position_closed).
-- stop_triggered: the watchdog marked a stop of this position firing (mark_firing.lua): a bot
-- that cancels now races the fill, and a new stop would be placed for a closing position.
-- Returns allowed (0/1), reason, age_ms (-1 unknown), the position hash (flat), the health map.
local function judge(health_key, pos_key, reaping_key, lease_key, max_age_arg, now)
  local flat = redis.call('HGETALL', pos_key)
  local hv = redis.call('HMGET', health_key, 'beat_ms', 'clock_offset_ms', 'veto_max_age_ms', 'events_maxlen')
  -- beat_ms is written by every heartbeat: nil means the health hash expired (watchdog down)
  local h = {beat_ms = hv[1] or nil, clock_offset_ms = hv[2] or nil, veto_max_age_ms = hv[3] or nil,
    events_maxlen = hv[4] or nil}
  if not hv[1] then return 0, 'watchdog_down', -1, flat, h end
  if #flat == 0 then return 0, 'no_position', -1, flat, h end
  local p = as_map(flat)
  local age = age_of(p, tonumber(h['clock_offset_ms']) or 0, now)
  if age < 0 or age > max_age_of(max_age_arg, h['veto_max_age_ms']) then
    return 0, 'stale', age, flat, h
  end
  if p['state'] == 'closed' then return 0, 'position_closed', age, flat, h end
  if p['state'] ~= 'open' then return 0, 'stale', age, flat, h end
  if (p['firing_algo_id'] or '') ~= '' then return 0, 'stop_triggered', age, flat, h end
  if redis.call('EXISTS', reaping_key) == 1 then return 0, 'reaping', age, flat, h end
  local l = redis.call('HMGET', lease_key, 'token', 'released_ms', 'revoked', 'expires_ms')
  if lease_held({token = l[1] or nil, released_ms = l[2] or nil, revoked = l[3] or nil,
                 expires_ms = l[4] or nil}, now) then
    return 0, 'lease_held', age, flat, h
  end
  return 1, 'ok', age, flat, h
end
