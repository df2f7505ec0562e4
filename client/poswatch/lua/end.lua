-- end: the bot finished (created its new stop, or gave up). Releases the lease and records the
-- unprotected window: begin -> end (upper bound: the cancel happens after begin) and
-- confirm -> end (the create happens after confirm).
-- A zero-gap replacement (ARGV[6] = 'replace': the new stop was created and confirmed *before*
-- the old one was cancelled, so a stop protected the position at every instant) records a
-- window of 0; begin -> end is kept as span_ms.
-- KEYS: 1 lease, 2 leases, 3 windows, 4 events
-- ARGV: 1 member, 2 token, 3 outcome, 4 channel, 5 health key (read-only, see begin.lua),
--       6 mode ('' or absent: cancel then create; 'replace': create, confirm, then cancel)
-- Reply: {released 0|1, reason ('ok'|'already_released'|'lease_lost'), window_ms (-1 unknown)}
want_count(KEYS, 4, ARGV, (#ARGV == 6) and 6 or 5)  -- ARGV[6], mode, is optional
local member = want_member(ARGV[1])
local prefix = prefix_of(KEYS[1], ':lease:' .. member, 'lease key')
want_equal(KEYS[2], 'leases key', prefix .. ':leases')
want_equal(KEYS[3], 'windows key', prefix .. ':windows')
want_equal(KEYS[4], 'events key', prefix .. ':events')
local token = ARGV[2]
want_int(token, 'token', 0, MAX_INT)
local outcome = want_text(ARGV[3], 'outcome', 128)
want_equal(ARGV[4], 'channel', KEYS[4])
want_equal(ARGV[5], 'health key', prefix .. ':health')
local now = now_ms()
local mode = ARGV[6] or ''
if mode ~= '' and mode ~= 'replace' then reject('mode', "expected '' or 'replace'", mode) end
local maxlen = events_maxlen(ARGV[5])
local l = as_map(redis.call('HGETALL', KEYS[1]))
if l['token'] ~= token then
  emit(KEYS[4], ARGV[4], maxlen, now, {'kind', 'lease', 'action', 'end', 'position', member,
    'token', token, 'outcome', outcome, 'reason', 'lease_lost'})
  return {0, 'lease_lost', -1}
end
if l['released_ms'] ~= nil then return {0, 'already_released', -1} end
-- Times begin/confirm wrote; one that is not an integer (a hand-edited record) is unknown: -1.
local begin_ms, confirm_ms = stored_int(l['begin_ms']), stored_int(l['confirm_ms'])
local window = begin_ms and (now - begin_ms) or -1
local after_confirm = confirm_ms and (now - confirm_ms) or -1
local span = window
if mode == 'replace' then window, after_confirm = 0, 0 end
redis.call('HSET', KEYS[1], 'released_ms', tostring(now), 'outcome', outcome)
redis.call('PEXPIRE', KEYS[1], LEASE_LINGER_MS)
redis.call('ZREM', KEYS[2], member)
local record = cjson.encode({holder = l['holder'], token = token, begin_ms = begin_ms,
  confirm_ms = confirm_ms, end_ms = now, window_ms = window,
  after_confirm_ms = after_confirm, outcome = outcome, mode = mode, span_ms = span})
redis.call('HSET', KEYS[3], member, record)
local count = stored_int(redis.call('HGET', KEYS[3], member .. ':count')) or 0
redis.call('HSET', KEYS[3], member .. ':count', tostring(count + 1))
local worst = stored_int(redis.call('HGET', KEYS[3], member .. ':max_window_ms')) or -1
if window > worst then redis.call('HSET', KEYS[3], member .. ':max_window_ms', window) end
emit(KEYS[4], ARGV[4], maxlen, now, {'kind', 'lease', 'action', 'end', 'position', member,
  'token', token, 'holder', l['holder'] or '', 'outcome', outcome, 'window_ms', tostring(window),
  'after_confirm_ms', tostring(after_confirm), 'mode', mode, 'span_ms', tostring(span)})
return {1, 'ok', window}
