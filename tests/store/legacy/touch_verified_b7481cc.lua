-- touch_verified: many re-verifications in one call. Each entry moves 'verified_ms' and
-- 'version' of a position whose facts did not change, and writes exactly what
-- publish_position would for that view (updated_ms, rev, index, TTL or PERSIST, lease revoke
-- on a closure), but only where the hash still holds the version and state being re-verified.
-- Anywhere else (older or newer version, retracted, missing: Redis lost it) nothing is written
-- and the entry's index is returned: the watchdog then writes the complete view with the usual
-- compare-and-set, so an older fact never wins and freshness never lands on another state.
-- Only a hash this leader wrote (its 'fence' field is the caller's token) is touched.
-- KEYS: 1 positions, 2 leases, 3 events, 4 health, 5 fence, then per entry i: 6+2i position,
--       7+2i lease
-- ARGV: 1 closed_ttl_ms, 2 channel, 3 fencing token, then per entry i (from 0): 4+5i member,
--       5+5i re-verified version, 6+5i new version, 7+5i verified_ms, 8+5i state
-- Reply: the 1-based indexes of the entries not written
if #KEYS < 5 or (#KEYS - 5) % 2 ~= 0 then reject('call', 'expected 5 + 2n keys', #KEYS) end
local n = (#KEYS - 5) / 2
if #ARGV ~= 3 + 5 * n then reject('call', string.format('expected %d arguments', 3 + 5 * n), #ARGV) end
local prefix = prefix_of(KEYS[1], ':positions', 'positions key')
want_equal(KEYS[2], 'leases key', prefix .. ':leases')
want_equal(KEYS[3], 'events key', prefix .. ':events')
want_equal(KEYS[4], 'health key', prefix .. ':health')
local closed_ttl = want_int(ARGV[1], 'closed_ttl_ms', 1, MAX_INT)
want_equal(ARGV[2], 'channel', KEYS[3])
want_fence(KEYS[5], ARGV[3], prefix)
for i = 0, n - 1 do
  local a = 4 + 5 * i
  local member = want_member(ARGV[a])
  want_equal(KEYS[6 + 2 * i], 'position key', prefix .. ':pos:' .. member)
  want_equal(KEYS[7 + 2 * i], 'lease key', prefix .. ':lease:' .. member)
  want_int(ARGV[a + 1], 're-verified version', 1, MAX_INT)
  want_int(ARGV[a + 2], 'version', 1, MAX_INT)
  want_int(ARGV[a + 3], 'verified_ms', -MAX_INT, MAX_INT)
  want_one_of(ARGV[a + 4], 'state', {'open', 'closed', 'unknown'})
end
local now = now_ms()
local maxlen = nil
local missed = {}
for i = 0, n - 1 do
  local pos, lease = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
  local a = 4 + 5 * i
  local member, state = ARGV[a], ARGV[a + 4]
  local held = redis.call('HMGET', pos, 'version', 'state', 'fence')
  if held[1] and stored_int(held[1]) == tonumber(ARGV[a + 1]) and held[2] == state
      and held[3] == ARGV[3] then
    redis.call('HSET', pos, 'verified_ms', ARGV[a + 3], 'version', ARGV[a + 2],
      'updated_ms', tostring(now))
    bump_rev(pos)
    redis.call('SADD', KEYS[1], member)
    if state == 'closed' then
      redis.call('PEXPIRE', pos, closed_ttl)
      maxlen = maxlen or events_maxlen(KEYS[4])
      revoke(lease, KEYS[2], KEYS[3], ARGV[2], maxlen, member, 'position_closed', now)
    else
      redis.call('PERSIST', pos)
    end
  else
    table.insert(missed, i + 1)
  end
end
return missed
