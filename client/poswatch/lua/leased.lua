-- leased: members "SYMBOL:SIDE" with a live lease (the poller polls them fast); drops expired ones.
-- KEYS: 1 leases
-- Reply: array of members
want_count(KEYS, 1, ARGV, 0)
prefix_of(KEYS[1], ':leases', 'leases key')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
return redis.call('ZRANGE', KEYS[1], 0, -1)
