-- touch: the fast path of a heartbeat that changes nothing (the heartbeat of nearly every tab,
-- every interval). Atomic, like every script: it either extends the session or does nothing.
--
--   KEYS[1]  the session's hash (R:s:<sid>, see presence.lua)
--   KEYS[2]  the deadline sorted set (P:dl)
--   ARGV[1]  the session token the client sent
--   ARGV[2]  the user id        ARGV[3]  the name as stored        ARGV[4]  away (0/1)
--   ARGV[5]  now (ms)           ARGV[6]  the new deadline (ms)     ARGV[7]  the session's deadline member
--
-- Returns 1 when the session was extended; 0 when this is not a no-change heartbeat of a live
-- session whose deadline is already queued no later than the new one (no such session, another
-- token or user, a new name or away flag, a deadline to queue): the caller then runs the full
-- heartbeat of presence.lua, which decides what the change means.
local s = redis.call('HMGET', KEYS[1], 'tok', 'user', 'name', 'away')
if s[1] ~= ARGV[1] or s[2] ~= ARGV[2] or s[3] ~= ARGV[3] or s[4] ~= ARGV[4] then return 0 end
local queued = redis.call('ZSCORE', KEYS[2], ARGV[7])
if not queued or tonumber(queued) > tonumber(ARGV[6]) then return 0 end
redis.call('HSET', KEYS[1], 'exp', ARGV[6], 'hb', ARGV[5])
redis.call('HDEL', KEYS[1], 'grace')
return 1
