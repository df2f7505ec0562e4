-- set_protection: the guard's answer, written as added fields of a position hash that exists
-- (never creates one: a hash expired or not yet published stays as it is). Only these fields
-- change (plus rev and updated_ms): state, version and TTL stay as publish_position left them.
-- Fenced like every watchdog write (docs/HA.md): a deposed leader's answer is refused.
-- KEYS: 1 position, 2 fence
-- ARGV: 1 protection (covered|partial|none|unknown; "" removes the fields: not open),
--       2 unprotected_since_ms ("" when not unprotected), 3 guard_order (client id or ""),
--       4 fencing token
-- Reply: 1 written, 0 no such hash
want_count(KEYS, 2, ARGV, 4)
local member = string.match(KEYS[1] or '', ':pos:(.*)$') or ''
local prefix = prefix_of(KEYS[1], ':pos:' .. want_member(member, 'position key'), 'position key')
want_one_of(ARGV[1], 'protection', {'covered', 'partial', 'none', 'unknown', ''})
if ARGV[2] ~= '' then want_int(ARGV[2], 'unprotected_since_ms', 0, MAX_INT) end
want_text(ARGV[3], 'guard_order', 36, true)
want_fence(KEYS[2], ARGV[4], prefix)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  if redis.call('HDEL', KEYS[1], 'protection', 'unprotected_since_ms', 'guard_order') == 0 then
    return 1
  end
else
  redis.call('HSET', KEYS[1], 'protection', ARGV[1], 'unprotected_since_ms', ARGV[2],
    'guard_order', ARGV[3])
end
redis.call('HSET', KEYS[1], 'updated_ms', tostring(now_ms()), 'fence', ARGV[4])
bump_rev(KEYS[1])
return 1
