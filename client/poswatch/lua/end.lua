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
local now = now_ms()
local member, token, outcome = ARGV[1], ARGV[2], ARGV[3]
local mode = ARGV[6] or ''
if mode ~= '' and mode ~= 'replace' then return redis.error_reply('ERR mode must be empty or replace') end
local maxlen = events_maxlen(ARGV[5])
local l = as_map(redis.call('HGETALL', KEYS[1]))
if l['token'] ~= token then
  emit(KEYS[4], ARGV[4], maxlen, now, {'kind', 'lease', 'action', 'end', 'position', member,
    'token', token, 'outcome', outcome, 'reason', 'lease_lost'})
  return {0, 'lease_lost', -1}
end
if l['released_ms'] ~= nil then return {0, 'already_released', -1} end
local span = now - tonumber(l['begin_ms'])
local window = span
local after_confirm = -1
if l['confirm_ms'] ~= nil then after_confirm = now - tonumber(l['confirm_ms']) end
if mode == 'replace' then window, after_confirm = 0, 0 end
redis.call('HSET', KEYS[1], 'released_ms', tostring(now), 'outcome', outcome)
redis.call('PEXPIRE', KEYS[1], LEASE_LINGER_MS)
redis.call('ZREM', KEYS[2], member)
local record = cjson.encode({holder = l['holder'], token = token, begin_ms = tonumber(l['begin_ms']),
  confirm_ms = tonumber(l['confirm_ms']), end_ms = now, window_ms = window,
  after_confirm_ms = after_confirm, outcome = outcome, mode = mode, span_ms = span})
redis.call('HSET', KEYS[3], member, record)
redis.call('HINCRBY', KEYS[3], member .. ':count', 1)
local worst = tonumber(redis.call('HGET', KEYS[3], member .. ':max_window_ms')) or -1
if window > worst then redis.call('HSET', KEYS[3], member .. ':max_window_ms', window) end
emit(KEYS[4], ARGV[4], maxlen, now, {'kind', 'lease', 'action', 'end', 'position', member,
  'token', token, 'holder', l['holder'] or '', 'outcome', outcome, 'window_ms', tostring(window),
  'after_confirm_ms', tostring(after_confirm), 'mode', mode, 'span_ms', tostring(span)})
return {1, 'ok', window}
