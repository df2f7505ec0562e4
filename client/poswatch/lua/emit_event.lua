-- emit_event: append one event to the bounded stream and announce it on the channel.
-- KEYS: 1 events, 2 health
-- ARGV: 1 channel, 2.. field, value pairs (must include 'kind')
-- Reply: the stream entry id
if #KEYS ~= 2 then reject('call', 'expected 2 keys', #KEYS) end
local prefix = prefix_of(KEYS[1], ':events', 'events key')
want_equal(KEYS[2], 'health key', prefix .. ':health')
want_equal(ARGV[1], 'channel', KEYS[1])
if #ARGV < 3 then reject('event', 'expected field, value pairs with kind', #ARGV - 1) end
want_pairs(ARGV, 2, 'event')
local kind = nil
for i = 2, #ARGV, 2 do
  if ARGV[i] == 'kind' then kind = ARGV[i + 1] end
  if ARGV[i] == 'at_ms' then reject('event field', 'at_ms is the script\'s own', ARGV[i]) end
end
want_text(kind, 'kind', 64)
return emit(KEYS[1], ARGV[1], events_maxlen(KEYS[2]), now_ms(), {unpack(ARGV, 2)})
