-- resign_lead: a graceful stop hands the lease on at once (a standby need not wait for it to
-- expire) and removes the instance from the instances set. The fence stays: the next leader's
-- token is greater. Only this instance's own lease is removed.
-- KEYS: 1 leader, 2 instances
-- ARGV: 1 instance
-- Reply: 1 if the lease was this instance's and is gone, else 0
want_count(KEYS, 2, ARGV, 1)
local prefix = prefix_of(KEYS[1], ':leader', 'leader key')
want_equal(KEYS[2], 'instances key', prefix .. ':instances')
want_text(ARGV[1], 'instance', MAX_TEXT)
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
