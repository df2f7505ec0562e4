-- lease_ends: Redis' clock and the leases zset in one atomic read, so the guard places each
-- lease's end on its own clock without skew (a script, not MULTI/TIME: a Redis Cluster client
-- refuses a pipelined TIME, and the script runs on the leases key's own node).
-- KEYS: 1 leases
-- Reply: {seconds, microseconds, {member, score, member, score, ...}}
want_count(KEYS, 1, ARGV, 0)
prefix_of(KEYS[1], ':leases', 'leases key')
local t = redis.call('TIME')
return {t[1], t[2], redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
