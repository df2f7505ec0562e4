-- retract_position: the watchdog lost knowledge of a position; show it as unknown, with a reason.
-- The version is kept (raised to ARGV min_version), never bumped: the next fact from the core
-- carries a greater version and must still be accepted. 'rev' counts every write for readers.
-- KEYS: 1 position, 2 positions, 3 fence
-- ARGV: 1 member, 2 reason, 3 min_version, 4 symbol, 5 side, 6 fencing token
-- Reply: stored version
want_count(KEYS, 3, ARGV, 6)
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':pos:' .. member, 'position key')
want_equal(KEYS[2], 'positions key', prefix .. ':positions')
want_reason(ARGV[2])
local min_version = want_int(ARGV[3], 'min_version', 0, MAX_INT)
want_equal(ARGV[1], 'member', tostring(ARGV[4]) .. ':' .. tostring(ARGV[5]))
want_fence(KEYS[3], ARGV[6], prefix)
local now = now_ms()
local version = math.max(stored_int(redis.call('HGET', KEYS[1], 'version')) or 0, min_version)
redis.call('HSET', KEYS[1], 'state', 'unknown', 'knowledge', 'unknown', 'reason', ARGV[2],
  'version', string.format('%d', version), 'symbol', ARGV[4], 'side', ARGV[5],
  'updated_ms', tostring(now), 'retracted_ms', tostring(now), 'fence', ARGV[6])
bump_rev(KEYS[1])
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return string.format('%d', version)
