-- mark_stopped: a graceful stop, visible at once. The health hash goes (every verdict then says
-- watchdog_down, exactly as when it expires) and a watchdog_stopped event is appended, in one
-- step, but only while the hash is this instance's: a newer watchdog's beat is never removed.
-- KEYS: 1 health, 2 events
-- ARGV: 1 instance, 2 channel
-- Reply: 'removed', 'gone' (expired or deleted already) or 'other' (another instance's hash)
want_count(KEYS, 2, ARGV, 2)
local prefix = prefix_of(KEYS[1], ':health', 'health key')
want_equal(KEYS[2], 'events key', prefix .. ':events')
want_text(ARGV[1], 'instance', MAX_TEXT)
want_equal(ARGV[2], 'channel', KEYS[2])
local owner = redis.call('HGET', KEYS[1], 'instance')
if not owner then return 'gone' end
if owner ~= ARGV[1] then return 'other' end
local maxlen = events_maxlen(KEYS[1])
redis.call('DEL', KEYS[1])
emit(KEYS[2], ARGV[2], maxlen, now_ms(), {'kind', 'watchdog_stopped', 'instance', ARGV[1]})
return 'removed'
