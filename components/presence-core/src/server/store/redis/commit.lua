-- commit: one state transition, applied atomically if what it was decided on still holds.
-- What the transition is, was decided in Rust (`server/rules`) from what load.lua read; this
-- only checks its guards and writes. No key name is made here: every key is declared in KEYS.
--
--   KEYS  every key the transition reads or writes
--   ARGV  a program: an op name, then its operands (k = an index into KEYS). Guards come first;
--         if one fails, nothing is written.
--     guards   eq k v        GET KEYS[k] is v ('' = no such key)
--              heq k f v     HGET KEYS[k] f is v ('' = no such field)
--     writes   set k v | del k | hset k f v | hdel k f | zadd k score m | zrem k m
--              sadd k m | srem k m
--              hold k f t v    HSET field f of hash KEYS[k] to t and its version field ("\n") to v
--              free k f v      HDEL field f of hash KEYS[k], set its version field to v; a hash
--                              with nothing left but its version is deleted
--              sched k at m c  queue m at `at` in zset KEYS[k] unless it is queued earlier; if m
--                              is then the earliest, announce `at` on channel c
--              queue k at m c  queue m at `at` (earlier or later than now); if m is then the
--                              earliest, announce `at` on channel c
--              pub c msg       PUBLISH msg on channel c
--
-- Returns 1 if applied, 0 if a guard failed.
local arity = {eq = 2, heq = 3, set = 2, del = 1, hset = 3, hdel = 2, zadd = 3, zrem = 2,
  sadd = 2, srem = 2, hold = 4, free = 3, sched = 4, queue = 4, pub = 2}
local i = 1
while i <= #ARGV do
  local op, a = ARGV[i], ARGV
  local n = arity[op]
  if not n then return redis.error_reply('commit: unknown op ' .. tostring(op)) end
  local function key(j) return KEYS[tonumber(a[i + j])] end
  if op == 'eq' then
    if (redis.call('GET', key(1)) or '') ~= a[i + 2] then return 0 end
  elseif op == 'heq' then
    if (redis.call('HGET', key(1), a[i + 2]) or '') ~= a[i + 3] then return 0 end
  elseif op == 'set' then redis.call('SET', key(1), a[i + 2])
  elseif op == 'del' then redis.call('DEL', key(1))
  elseif op == 'hset' then redis.call('HSET', key(1), a[i + 2], a[i + 3])
  elseif op == 'hdel' then redis.call('HDEL', key(1), a[i + 2])
  elseif op == 'zadd' then redis.call('ZADD', key(1), a[i + 2], a[i + 3])
  elseif op == 'zrem' then redis.call('ZREM', key(1), a[i + 2])
  elseif op == 'sadd' then redis.call('SADD', key(1), a[i + 2])
  elseif op == 'srem' then redis.call('SREM', key(1), a[i + 2])
  elseif op == 'hold' then
    redis.call('HSET', key(1), a[i + 2], a[i + 3], '\n', a[i + 4])
  elseif op == 'free' then
    local h = key(1)
    redis.call('HDEL', h, a[i + 2])
    redis.call('HSET', h, '\n', a[i + 3])
    if redis.call('HLEN', h) <= 1 then redis.call('DEL', h) end
  elseif op == 'sched' then
    local z, at, m = key(1), tonumber(a[i + 2]), a[i + 3]
    local current = redis.call('ZSCORE', z, m)
    if not current or tonumber(current) > at then
      redis.call('ZADD', z, at, m)
      if redis.call('ZRANGE', z, 0, 0)[1] == m then redis.call('PUBLISH', a[i + 4], a[i + 2]) end
    end
  elseif op == 'queue' then
    local z, m = key(1), a[i + 3]
    redis.call('ZADD', z, a[i + 2], m)
    if redis.call('ZRANGE', z, 0, 0)[1] == m then redis.call('PUBLISH', a[i + 4], a[i + 2]) end
  elseif op == 'pub' then redis.call('PUBLISH', a[i + 1], a[i + 2])
  end
  i = i + n + 1
end
return 1
