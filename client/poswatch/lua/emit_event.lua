-- emit_event: append one event to the bounded stream and announce it on the channel.
-- KEYS: 1 events, 2 health
-- ARGV: 1 channel, 2.. field, value pairs (must include 'kind')
-- Reply: the stream entry id
return emit(KEYS[1], ARGV[1], events_maxlen(KEYS[2]), now_ms(), {unpack(ARGV, 2)})
