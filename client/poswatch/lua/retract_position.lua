-- retract_position: the watchdog lost knowledge of a position; show it as unknown, with a reason.
-- The version is kept (raised to ARGV min_version), never bumped: the next fact from the core
-- carries a greater version and must still be accepted. 'rev' counts every write for readers.
-- KEYS: 1 position, 2 positions
-- ARGV: 1 member, 2 reason, 3 min_version, 4 symbol, 5 side
-- Reply: stored version
local now = now_ms()
local version = math.max(tonumber(redis.call('HGET', KEYS[1], 'version')) or 0, tonumber(ARGV[3]) or 0)
redis.call('HSET', KEYS[1], 'state', 'unknown', 'knowledge', 'unknown', 'reason', ARGV[2],
  'version', string.format('%d', version), 'symbol', ARGV[4], 'side', ARGV[5],
  'updated_ms', tostring(now), 'retracted_ms', tostring(now))
redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return string.format('%d', version)
