-- emit_event: append one event to the bounded stream and announce it on the channel.
-- KEYS: 1 events, 2 health, 3 fence
-- ARGV: 1 channel, 2 fencing token, 3.. field, value pairs (must include 'kind')
-- Reply: the stream entry id
if #KEYS ~= 3 then reject('call', 'expected 3 keys', #KEYS) end
local prefix = prefix_of(KEYS[1], ':events', 'events key')
want_equal(KEYS[2], 'health key', prefix .. ':health')
want_equal(ARGV[1], 'channel', KEYS[1])
if #ARGV < 4 then reject('event', 'expected a fence and field, value pairs with kind', #ARGV - 1) end
want_pairs(ARGV, 3, 'event')
local kind = nil
for i = 3, #ARGV, 2 do
  if ARGV[i] == 'kind' then kind = ARGV[i + 1] end
  if ARGV[i] == 'at_ms' then reject('event field', 'at_ms is the script\'s own', ARGV[i]) end
end
want_text(kind, 'kind', 64)
want_fence(KEYS[3], ARGV[2], prefix)
return emit(KEYS[1], ARGV[1], events_maxlen(KEYS[2]), now_ms(), {unpack(ARGV, 3)})
