-- heartbeat: the leader rewrites the health hash with a TTL (fenced like every watchdog write).
-- A refusal (FENCED) tells the instance either that a newer leader took over (it steps down) or
-- that Redis lost the fence key, and so everything else (restart without persistence,
-- FLUSHALL, failover, an old snapshot restored): it then acquires the lead again and
-- republishes everything. This replaces the epoch token of earlier versions (docs/HA.md).
-- KEYS: 1 health, 2 fence
-- ARGV: 1 ttl_ms, 2 fencing token, 3 watchdog wall ms, 4.. field, value pairs
-- Reply: 1
if #KEYS ~= 2 then reject('call', 'expected 2 keys', #KEYS) end
local prefix = prefix_of(KEYS[1], ':health', 'health key')
local ttl_ms = want_int(ARGV[1], 'ttl_ms', 1, MAX_AGE_LIMIT_MS)
local wall_ms = want_int(ARGV[3], 'wall ms', 0, MAX_INT)
want_pairs(ARGV, 4, 'health')
want_fence(KEYS[2], ARGV[2], prefix)
local now = now_ms()
redis.call('DEL', KEYS[1])
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
redis.call('HSET', KEYS[1], 'clock_offset_ms', tostring(now - wall_ms), 'beat_ms', tostring(now),
  'fence', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return 1
