-- touch: the fast path of heartbeats that change nothing (the heartbeat of nearly every tab,
-- every interval), a batch at a time. For each session it either extends the session or does
-- nothing, atomically with the rest of the batch.
--
--   KEYS[i]  the i-th session's hash (R:s:<sid>, see keys.rs)
--   ARGV     6 per session, in KEYS' order: the session token the client sent, the user id,
--            the name as stored, the status mark (keys::status_mark: active, away or
--            idle, and the kind), now (ms), and the new deadline (ms)
--
-- Returns one integer per session: 1 when it was extended; 0 when this is not a no-change
-- heartbeat of a live session whose deadline moves later (no such session, another token or
-- user, a new name or away flag, a shorter interval, an older heartbeat than the last one
-- written): the caller then runs the full heartbeat, where the rules decide what the change
-- means.
--
-- A live session is always queued in the deadline set no later than its `exp` (commits only
-- ever queue it earlier, and expiry queues it again at its deadline), so a later `exp` needs no
-- write there: when the queued time comes, expiry finds the new deadline.
local out = {}
for i = 1, #KEYS do
  local sk, a = KEYS[i], (i - 1) * 6
  local extended = 0
  local s = redis.call('HMGET', sk, 'tok', 'user', 'name', 'away', 'exp', 'grace', 'hb', 'gs')
  -- Also in order: a touch older than the session's last heartbeat (one put back after a
  -- failed flush) must not undo a newer one.
  if s[1] == ARGV[a + 1] and s[2] == ARGV[a + 2] and s[3] == ARGV[a + 3] and s[4] == ARGV[a + 4]
      and tonumber(s[5]) <= tonumber(ARGV[a + 6]) and tonumber(s[7]) <= tonumber(ARGV[a + 5]) then
    redis.call('HSET', sk, 'exp', ARGV[a + 6], 'hb', ARGV[a + 5])
    -- A heartbeat takes back a grace (a closed socket's, a goodbye's) set before it, not one
    -- set after it (a heartbeat answered from memory, flushed after the socket closed).
    -- (The rule is rules::takes_back_grace; this is its fast-path copy, kept equal.)
    if s[6] and (not s[8] or tonumber(s[8]) <= tonumber(ARGV[a + 5])) then
      redis.call('HDEL', sk, 'grace', 'bye', 'gs')
    end
    extended = 1
  end
  out[i] = extended
end
return out
