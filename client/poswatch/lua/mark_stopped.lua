-- mark_stopped: a graceful stop, visible at once. The health hash goes (every verdict then says
-- watchdog_down, exactly as when it expires) and a watchdog_stopped event is appended, in one
-- step, but only while this instance holds the fence: a newer leader's beat is never removed.
-- The lease is handed on in the same step (a standby takes over without waiting it out).
-- KEYS: 1 health, 2 events, 3 fence, 4 leader, 5 instances
-- ARGV: 1 instance, 2 channel, 3 fencing token
-- Reply: 'removed', 'gone' (expired or deleted already) or 'other' (another instance leads)
want_count(KEYS, 5, ARGV, 3)
local prefix = prefix_of(KEYS[1], ':health', 'health key')
want_equal(KEYS[2], 'events key', prefix .. ':events')
want_equal(KEYS[3], 'fence key', prefix .. ':fence')
want_equal(KEYS[4], 'leader key', prefix .. ':leader')
want_equal(KEYS[5], 'instances key', prefix .. ':instances')
want_text(ARGV[1], 'instance', MAX_TEXT)
want_equal(ARGV[2], 'channel', KEYS[2])
want_int(ARGV[3], 'fence', 0, MAX_INT)
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 'other' end
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
local owner = redis.call('HGET', KEYS[1], 'instance')
if not owner then return 'gone' end
if owner ~= ARGV[1] then return 'other' end
local maxlen = events_maxlen(KEYS[1])
redis.call('DEL', KEYS[1])
emit(KEYS[2], ARGV[2], maxlen, now_ms(), {'kind', 'watchdog_stopped', 'instance', ARGV[1]})
return 'removed'
