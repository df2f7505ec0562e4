-- touch_verified: many re-verifications in one call. Each entry moves 'verified_ms' and
-- 'version' of a position whose facts did not change, and writes exactly what
-- publish_position would for that view (updated_ms, rev, index, TTL or PERSIST, lease revoke
-- on a closure), but only where the hash still holds the version and state being re-verified.
-- Anywhere else (older or newer version, retracted, missing: Redis lost it) nothing is written
-- and the entry's index is returned: the watchdog then writes the complete view with the usual
-- compare-and-set, so an older fact never wins and freshness never lands on another state.
-- Only a hash this leader wrote (its 'fence' field is the caller's token) is touched.
-- One verified_ms for all entries, and each entry's new version is the re-verified one + 1
-- (a re-verification, core/effects.py rules 2 and 3): three values an entry, four for a closed
-- one, instead of seven (the member is read from the position key).
-- KEYS: 1 positions, 2 leases, 3 events, 4 health, 5 fence, then per entry its position key
--       and, for an entry in state 'closed' only, its lease key right after it
-- ARGV: 1 closed_ttl_ms, 2 channel, 3 fencing token, 4 verified_ms, then per entry i (from 0):
--       5+2i re-verified version, 6+2i state
-- Reply: the 1-based indexes of the entries not written
if #KEYS < 5 or #ARGV < 4 or (#ARGV - 4) % 2 ~= 0 then
  reject('call', 'expected 5 keys and 4 arguments, then 2 arguments an entry', #ARGV)
end
local n = (#ARGV - 4) / 2
local prefix = prefix_of(KEYS[1], ':positions', 'positions key')
want_equal(KEYS[2], 'leases key', prefix .. ':leases')
want_equal(KEYS[3], 'events key', prefix .. ':events')
want_equal(KEYS[4], 'health key', prefix .. ':health')
local closed_ttl = want_int(ARGV[1], 'closed_ttl_ms', 1, MAX_INT)
want_equal(ARGV[2], 'channel', KEYS[3])
local token = ARGV[3]
want_fence(KEYS[5], token, prefix)
local verified = ARGV[4]
want_int(verified, 'verified_ms', -MAX_INT, MAX_INT)
local pos_prefix = prefix .. ':pos:'
local lease_prefix = prefix .. ':lease:'
-- Every entry checked before the first write: position key, member, lease key, version, state.
local pos_keys, lease_keys, members, versions = {}, {}, {}, {}
local k = 6
for i = 1, n do
  local pos = KEYS[k]
  if type(pos) ~= 'string' or string.sub(pos, 1, #pos_prefix) ~= pos_prefix then
    reject('position key', 'expected a key starting with ' .. pos_prefix, pos)
  end
  local member = want_member(string.sub(pos, #pos_prefix + 1))
  local a = 3 + 2 * i
  versions[i] = want_int(ARGV[a], 're-verified version', 1, MAX_INT - 1)
  if want_one_of(ARGV[a + 1], 'state', {'open', 'closed', 'unknown'}) == 'closed' then
    k = k + 1
    lease_keys[i] = want_equal(KEYS[k], 'lease key', lease_prefix .. member)
  end
  pos_keys[i], members[i] = pos, member
  k = k + 1
end
if k ~= #KEYS + 1 then reject('call', string.format('expected %d keys', k - 1), #KEYS) end
local now = now_ms()
local updated = tostring(now)
local maxlen = nil
local missed = {}
for i = 1, n do
  local pos, state = pos_keys[i], ARGV[4 + 2 * i]
  local held = redis.call('HMGET', pos, 'version', 'state', 'fence', 'rev')
  if held[1] and stored_int(held[1]) == versions[i] and held[2] == state and held[3] == token then
    -- the new version, and rev as bump_rev counts it, in one HSET
    redis.call('HSET', pos, 'verified_ms', verified, 'version', string.format('%d', versions[i] + 1),
      'updated_ms', updated, 'rev', string.format('%d', (stored_int(held[4]) or 0) + 1))
    redis.call('SADD', KEYS[1], members[i])
    if state == 'closed' then
      redis.call('PEXPIRE', pos, closed_ttl)
      maxlen = maxlen or events_maxlen(KEYS[4])
      revoke(lease_keys[i], KEYS[2], KEYS[3], ARGV[2], maxlen, members[i], 'position_closed', now)
    else
      redis.call('PERSIST', pos)
    end
  else
    table.insert(missed, i)
  end
end
return missed
