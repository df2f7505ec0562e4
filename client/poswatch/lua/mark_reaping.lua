-- mark_reaping: the leader vetoes begin on a position (reason in the marker) while it removes
-- orphaned orders there, or clears the marker (ttl_ms 0). Fenced like every watchdog write.
-- KEYS: 1 reaping, 2 fence
-- ARGV: 1 token, 2 reason ("" with ttl_ms 0), 3 ttl_ms (0 = clear)
-- Reply: 1
want_count(KEYS, 2, ARGV, 3)
local member = string.match(KEYS[1] or '', ':reaping:(.*)$') or ''
local prefix = prefix_of(KEYS[1], ':reaping:' .. want_member(member, 'reaping key'), 'reaping key')
want_fence(KEYS[2], ARGV[1], prefix)
local ttl = want_int(ARGV[3], 'ttl_ms', 0, MAX_AGE_LIMIT_MS)
if ttl == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], want_reason(ARGV[2]), 'PX', ttl)
end
return 1
