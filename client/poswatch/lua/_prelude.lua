-- Shared functions, prepended to every script by poswatch/scripts.py (Lua has no include).
-- Times are Redis server time in epoch ms; the watchdog's own clock enters only through
-- health.clock_offset_ms (server ms - watchdog ms, measured at each heartbeat).

local LEASE_LINGER_MS = 60000   -- a lease record outlives its expiry so confirm/end can still see it
local DEFAULT_MAXLEN = 10000

-- ---------------------------------------------------------------- argument checks
-- One bot's bad input must not poison everyone (issue 12): every script checks all its
-- arguments before its first write and fails with one clear error ("ERR bad <name>: <why>,
-- got <value>"), leaving nothing behind. Raised with error({err = ...}): Redis returns it as
-- the reply of the call. Integers are decimal digits only (Lua's tonumber would also take
-- "inf", "nan", "0x10", "1e3" and surrounding spaces) and at most 2^53 - 1 (exact in Lua's
-- doubles). The limits match watchdog/config.py: [veto] default_lease_ttl_ms <= 600000,
-- max_age_ms <= 3600000.
local MAX_INT = 9007199254740991
local MAX_LEASE_TTL_MS = 600000
local MAX_AGE_LIMIT_MS = 3600000
local MAX_TEXT = 256

local function reject(name, why, value)
  local shown = (value == nil) and 'nothing' or string.format('"%s"',
    string.gsub(string.sub(tostring(value), 1, 48), '[^%w%p ]', '?'))
  error({err = 'ERR bad ' .. name .. ': ' .. why .. ', got ' .. shown})
end

local function want_count(keys, want_keys, argv, want_argv)
  if #keys ~= want_keys then reject('call', string.format('expected %d keys', want_keys), #keys) end
  if #argv ~= want_argv then
    reject('call', string.format('expected %d arguments', want_argv), #argv)
  end
end

local function want_int(value, name, min, max)
  if type(value) ~= 'string' or #value > 17 or not string.match(value, '^%-?%d+$') then
    reject(name, 'expected an integer', value)
  end
  local n = tonumber(value)
  if n < min or n > max then
    reject(name, string.format('expected an integer from %d to %d', min, max), value)
  end
  return n
end

-- Printable ASCII only (no control characters, no NUL), 1..max_len bytes (0.. when may_be_empty).
local function want_text(value, name, max_len, may_be_empty)
  if type(value) ~= 'string' or #value > max_len or string.find(value, '[^%w%p ]')
      or (#value == 0 and not may_be_empty) then
    reject(name, string.format('expected %d-%d printable ASCII characters',
      may_be_empty and 0 or 1, max_len), value)
  end
  return value
end

local function want_one_of(value, name, allowed)
  for _, v in ipairs(allowed) do
    if value == v then return value end
  end
  reject(name, 'expected one of ' .. table.concat(allowed, ', '), value)
end

-- "SYMBOL:SIDE" as docs/PROTOCOL.md §1 spells it (watchdog/store/keys.py: member_of).
local function want_member(value, name)
  name = name or 'member'
  if type(value) ~= 'string' or #value > 46 then reject(name, 'expected SYMBOL:SIDE', value) end
  local symbol, side = string.match(value, '^([A-Z0-9_]+):(%u+)$')
  if symbol == nil or #symbol > 40 or (side ~= 'BOTH' and side ~= 'LONG' and side ~= 'SHORT') then
    reject(name, 'expected SYMBOL:SIDE (SIDE one of BOTH, LONG, SHORT)', value)
  end
  return value
end

-- The account prefix "wd:v1:{ACCOUNT}" of a key that must end with ``suffix``.
local function prefix_of(key, suffix, name)
  if type(key) ~= 'string' or #key <= #suffix or string.sub(key, -#suffix) ~= suffix then
    reject(name, 'expected a key ending in ' .. suffix, key)
  end
  local prefix = string.sub(key, 1, #key - #suffix)
  if not string.match(prefix, '^wd:v1:{[%w_%-]+}$') or #prefix > 80 then
    reject(name, 'expected a wd:v1:{ACCOUNT} key', key)
  end
  return prefix
end

local function want_equal(value, name, expected)
  if value ~= expected then reject(name, 'expected ' .. expected, value) end
  return value
end

-- A decimal string as the watchdog writes amounts and prices ("-1216", "0.010").
local function want_decimal(value, name)
  if type(value) ~= 'string' or #value > 64 or not string.match(value, '^%-?%d+%.?%d*$') then
    reject(name, 'expected a decimal number', value)
  end
  return value
end

-- An exchange order id: digits only (ids exceed 2^53 and are kept as text).
local function want_digits(value, name)
  if type(value) ~= 'string' or #value > 24 or not string.match(value, '^%d+$') then
    reject(name, 'expected an order id (digits)', value)
  end
  return value
end

-- A reason written by the watchdog: any text without control characters, up to 1024 bytes.
local function want_reason(value)
  if type(value) ~= 'string' or #value > 1024 or string.find(value, '%c') then
    reject('reason', 'expected up to 1024 bytes without control characters', value)
  end
  return value
end

-- "" (the watchdog's veto_max_age_ms) or 0..MAX_AGE_LIMIT_MS (0 also means the watchdog's).
local function want_max_age(value)
  if value ~= '' then want_int(value, 'max_age_ms', 0, MAX_AGE_LIMIT_MS) end
  return value
end

-- Field/value pairs from ARGV[first] on: an even count, field names non-empty text.
local function want_pairs(argv, first, name)
  if (#argv - first + 1) % 2 ~= 0 then reject(name, 'expected field, value pairs', #argv - first + 1) end
  for i = first, #argv, 2 do want_text(argv[i], name .. ' field', MAX_TEXT) end
end

-- An integer already stored by a script (a lease's times): its number, or nil when it is not
-- one (written by hand, or by a bot with write access to its lease keys).
local function stored_int(value)
  if type(value) ~= 'string' or #value > 17 or not string.match(value, '^%-?%d+$') then return nil end
  return tonumber(value)
end

-- rev counts every write of a position hash; a value that is not an integer restarts at 1
-- instead of failing the script halfway (HINCRBY would, after the writes before it).
local function bump_rev(key)
  local rev = stored_int(redis.call('HGET', key, 'rev')) or 0
  redis.call('HSET', key, 'rev', string.format('%d', rev + 1))
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ---------------------------------------------------------------- fencing (docs/HA.md)
-- Every write of the watchdog carries the fencing token its instance got when it became the
-- account's leader (acquire_lead.lua). The write goes through only while the stored token
-- (KEY wd:v1:{ACCOUNT}:fence) is exactly that one: an older token (a newer leader took over)
-- or a missing/lower stored one (Redis lost the key: restart, failover to a replica that
-- missed it) is refused with a FENCED error before anything is written. The refused instance
-- steps down at once; a lost key is answered by acquiring again, with a token from
-- acquire_lead's derivation that never goes backwards.
local function want_fence(fence_key, token_arg, prefix)
  want_equal(fence_key, 'fence key', prefix .. ':fence')
  local token = want_int(token_arg, 'fence', 1, MAX_INT)
  local stored = redis.call('GET', fence_key)
  if stored ~= token_arg then
    error({err = string.format('FENCED token %d refused: the account\'s fence is %s', token,
      stored or 'gone')})
  end
  return token
end

local function as_map(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

-- The events stream bound from the health hash; anything but a positive integer: the default.
local function maxlen_of(value)
  local n = stored_int(value)
  if n == nil or n < 1 then return DEFAULT_MAXLEN end
  return n
end

local function events_maxlen(health_key)
  return maxlen_of(redis.call('HGET', health_key, 'events_maxlen'))
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

-- A lease is held while it is neither released nor revoked nor past its expiry. An expiry that
-- is not an integer, or lies further ahead than the longest lease begin grants, was not
-- written by begin: not held (the next begin replaces it), so no bad record locks a position.
local function lease_held(l, now)
  local expires = stored_int(l['expires_ms'])
  return l['token'] ~= nil and l['released_ms'] == nil and l['revoked'] == nil
    and expires ~= nil and expires > now and expires <= now + MAX_LEASE_TTL_MS
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
