-- rates: one limit across every server. Each server admits requests with its own buckets and
-- reports here, every flush, how many it admitted per key since its last report; this adds them
-- to the key's theoretical arrival time (GCRA: each request pushes it one emission interval
-- past max(itself, now)) and returns it, so each server starts its bucket again from what all
-- of them admitted. No request waits for this: it runs in the background.
--
--   KEYS[i]  the i-th rate key (P:rate:s:<session> or P:rate:a:<address>)
--   ARGV[1]  now (ms); then 3 per key, in KEYS' order: requests admitted since the last
--            report, ms per request (1000 / rate), burst
--
-- Returns each key's theoretical arrival time (ms), as an integer string. A key expires once
-- it is a full burst in the past (it then says nothing a fresh bucket would not).
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 3
  local count, step, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now) + count * step
  local ttl = math.max(1, math.ceil(tat - now + burst * step))
  redis.call('SET', KEYS[i], string.format('%d', math.ceil(tat)), 'PX', ttl)
  out[i] = string.format('%d', math.ceil(tat))
end
return out
