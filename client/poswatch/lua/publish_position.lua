-- publish_position: compare-and-set on version. A view whose version is not greater than the
-- stored one is refused, so a late REST answer can never overwrite a newer stream fact.
-- A closed position keeps its hash with a TTL; a closure revokes the live lease atomically.
-- KEYS: 1 position, 2 positions, 3 lease, 4 leases, 5 events, 6 health
-- ARGV: 1 member, 2 version, 3 state, 4 knowledge, 5 amt, 6 entry, 7 source, 8 as_of_ms,
--       9 verified_ms, 10 reason, 11 closed_ttl_ms, 12 channel, 13 symbol, 14 side
-- Reply: {written 0|1, stored version}
local version = tonumber(ARGV[2])
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) >= version then return {0, stored} end
local now = now_ms()
local state = ARGV[3]
redis.call('HSET', KEYS[1], 'state', state, 'knowledge', ARGV[4], 'amt', ARGV[5], 'entry', ARGV[6],
  'source', ARGV[7], 'as_of_ms', ARGV[8], 'verified_ms', ARGV[9], 'reason', ARGV[10],
  'version', ARGV[2], 'symbol', ARGV[13], 'side', ARGV[14], 'updated_ms', tostring(now))
redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('SADD', KEYS[2], ARGV[1])
if state == 'closed' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[11]))
  revoke(KEYS[3], KEYS[4], KEYS[5], ARGV[12], events_maxlen(KEYS[6]), ARGV[1], 'position_closed', now)
else
  redis.call('PERSIST', KEYS[1])
end
return {1, ARGV[2]}
