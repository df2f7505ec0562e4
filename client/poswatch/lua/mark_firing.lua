-- mark_firing: show on a position's hash that one of its stops is firing (begin and check then
-- veto with stop_triggered), or that none is any more. Only the firing_* fields change (plus
-- rev and updated_ms): state, version and TTL stay as publish_position left them. A missing
-- hash is not created (a closed position's hash expires; a hash without state would read as
-- stale): the publisher writes the marker again after the position's next publish.
-- KEYS: 1 position, 2 fence
-- ARGV: 1 algo id ("" = nothing firing), 2 status, 3 since_ms (exchange time), 4 child order id or "",
--       5 fencing token
-- Reply: 1 written, 0 no such hash
want_count(KEYS, 2, ARGV, 5)
local member = string.match(KEYS[1] or '', ':pos:(.*)$') or ''
local prefix = prefix_of(KEYS[1], ':pos:' .. want_member(member, 'position key'), 'position key')
if ARGV[1] ~= '' then
  want_digits(ARGV[1], 'algo id')
  want_one_of(ARGV[2], 'status', {'TRIGGERING', 'TRIGGERED', 'CHILD_WORKING', 'CROSSED'})
  want_int(ARGV[3], 'since_ms', 0, MAX_INT)
  if ARGV[4] ~= '' then want_digits(ARGV[4], 'child id') end
end
want_fence(KEYS[2], ARGV[5], prefix)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  if redis.call('HDEL', KEYS[1], 'firing_algo_id', 'firing_status', 'firing_since_ms',
      'firing_child_id') == 0 then
    return 1
  end
else
  redis.call('HSET', KEYS[1], 'firing_algo_id', ARGV[1], 'firing_status', ARGV[2],
    'firing_since_ms', ARGV[3], 'firing_child_id', ARGV[4])
end
redis.call('HSET', KEYS[1], 'updated_ms', tostring(now_ms()), 'fence', ARGV[5])
bump_rev(KEYS[1])
return 1
