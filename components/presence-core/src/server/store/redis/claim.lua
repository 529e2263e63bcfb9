-- claim: takes the earliest due deadline for one server to act on. The entry is not removed but
-- leased: queued again a while later, so that if the server that took it dies before it commits
-- what the deadline meant, another server takes it then. Ties by member (as the memory store's
-- queue orders them).
--
--   KEYS[1] T:dl   one slot group's zset of deadlines (keys.rs; a scheduler claims from each):
--                  "s\n<room>\n<sid>" (a session), "u\n<room>\n<uid>" (the end of an offline
--                  user's retention), scored by time (ms)
--   ARGV[1] now (ms)    ARGV[2] the lease (ms)
--
-- Returns {member, its deadline} when one was due, else {'', the earliest deadline or -1}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 1)
if due[1] then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), due[1])
  return {due[1], due[2]}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {'', first[2] or '-1'}
