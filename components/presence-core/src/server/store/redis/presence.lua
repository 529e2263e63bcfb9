-- The presence store in Redis: every operation that reads and writes is this one script, so each
-- runs atomically (Redis runs one script at a time). Called by `RedisPresence` with
--   ARGV[1] op, ARGV[2] key prefix, ARGV[3] now (ms), ARGV[4] offline retention (ms),
--   ARGV[5] max offline users per room, ARGV[6..] the op's own arguments.
-- It returns {'ok', ...} or {'err', code, detail}, all strings.
--
-- Keys (R = prefix ':r:' .. #room .. ':' .. room; the length keeps ids with ':' apart):
--   R:seq          counter: the room's change number (the `seq` of its latest message)
--   R:ss           zset session id -> joined seq (every live session of the room)
--   R:uu           set of listed user ids (online and offline)
--   R:off          zset offline user id -> last_seen
--   R:s:<sid>      hash: user tok name away state ja js exp grace hb subs
--   R:u:<uid>      hash: name since seen active        R:us:<uid> zset sid -> joined seq
--   P:tok:<token>  room "\n" session id                 P:ur:<uid> set of rooms where online
--   P:dl           zset of deadlines: "s\n<room>\n<sid>" (session) and "u\n<room>\n<uid>"
--                  (end of an offline user's retention), scored by time
-- Messages go to channel P:ev:<room> as the JSON of a `RoomMessage`; a deadline that became the
-- earliest is announced on P:wake so every server's scheduler can re-plan its sleep.

local op, P = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local retention = tonumber(ARGV[4])
local max_offline = tonumber(ARGV[5])
local DL = P .. ':dl'

local function R(room) return P .. ':r:' .. #room .. ':' .. room end
local function skey(room, sid) return R(room) .. ':s:' .. sid end
local function ukey(room, uid) return R(room) .. ':u:' .. uid end
local function uskey(room, uid) return R(room) .. ':us:' .. uid end
local function js(s) return cjson.encode(s) end
local function int(n) return string.format('%d', n) end

local function session_json(room, sid)
  local f = redis.call('HMGET', skey(room, sid), 'name', 'away', 'state', 'ja', 'js')
  local away = f[2] == '1'
  local state = ''
  if f[3] then state = ',"state":' .. f[3] end
  return '{"session_id":' .. js(sid) .. ',"name":' .. js(f[1]) .. ',"status":"' ..
    (away and 'away' or 'active') .. '"' .. state .. ',"joined_at":' .. f[4] ..
    ',"joined_seq":' .. f[5] .. '}', away
end

local function user_json(room, uid)
  local u = redis.call('HMGET', ukey(room, uid), 'name', 'since', 'seen')
  if not u[1] then return nil end
  local sids = redis.call('ZRANGE', uskey(room, uid), 0, -1)
  local parts, all_away = {}, true
  for i, sid in ipairs(sids) do
    local j, away = session_json(room, sid)
    parts[i] = j
    if not away then all_away = false end
  end
  local online = #sids > 0
  local seen = ''
  if u[3] then seen = ',"last_seen":' .. u[3] end
  return '{"user_id":' .. js(uid) .. ',"name":' .. js(u[1]) .. ',"online":' .. tostring(online) ..
    ',"away":' .. tostring(online and all_away) .. ',"online_since":' .. u[2] .. seen ..
    ',"sessions":[' .. table.concat(parts, ',') .. ']}'
end

local function next_seq(room) return redis.call('INCR', R(room) .. ':seq') end

local function publish(room, json) redis.call('PUBLISH', P .. ':ev:' .. room, json) end

-- Queues `member` at `at` unless it is already queued earlier; announces a new earliest.
local function schedule(member, at)
  local current = redis.call('ZSCORE', DL, member)
  if current and tonumber(current) <= at then return end
  redis.call('ZADD', DL, at, member)
  local first = redis.call('ZRANGE', DL, 0, 0)
  if first[1] == member then redis.call('PUBLISH', P .. ':wake', int(at)) end
end

local function room_emptied(room)
  if redis.call('SCARD', R(room) .. ':uu') == 0 then
    redis.call('DEL', R(room) .. ':off', R(room) .. ':ss')
  end
end

local function remove_user(room, uid)
  local uk = ukey(room, uid)
  if redis.call('EXISTS', uk) == 0 then return false end
  for _, sid in ipairs(redis.call('ZRANGE', uskey(room, uid), 0, -1)) do
    local tok = redis.call('HGET', skey(room, sid), 'tok')
    if tok then redis.call('DEL', P .. ':tok:' .. tok) end
    redis.call('DEL', skey(room, sid))
    redis.call('ZREM', R(room) .. ':ss', sid)
    redis.call('ZREM', DL, 's\n' .. room .. '\n' .. sid)
  end
  redis.call('DEL', uk, uskey(room, uid))
  redis.call('SREM', R(room) .. ':uu', uid)
  redis.call('ZREM', R(room) .. ':off', uid)
  redis.call('ZREM', DL, 'u\n' .. room .. '\n' .. uid)
  redis.call('SREM', P .. ':ur:' .. uid, room)
  local seq = next_seq(room)
  publish(room, '{"type":"removed","seq":' .. seq .. ',"user_id":' .. js(uid) .. '}')
  room_emptied(room)
  return true
end

-- Drops the longest-gone offline users while the room lists more than allowed: the last in the
-- room's order, so among those gone equally long the greatest user id (as the memory store).
local function enforce_offline_cap(room)
  local off = R(room) .. ':off'
  while redis.call('ZCARD', off) > max_offline do
    local oldest = redis.call('ZRANGE', off, 0, 0, 'WITHSCORES')
    if not oldest[1] then return end
    local ties = redis.call('ZRANGEBYSCORE', off, oldest[2], oldest[2])
    remove_user(room, ties[#ties])
  end
end

local function end_session(room, sid, reason)
  local sk = skey(room, sid)
  local s = redis.call('HMGET', sk, 'user', 'tok', 'hb')
  if not s[1] then return false end
  local uid = s[1]
  redis.call('DEL', sk, P .. ':tok:' .. s[2])
  redis.call('ZREM', R(room) .. ':ss', sid)
  redis.call('ZREM', uskey(room, uid), sid)
  redis.call('ZREM', DL, 's\n' .. room .. '\n' .. sid)
  local uk = ukey(room, uid)
  local active = math.max(tonumber(redis.call('HGET', uk, 'active') or '0'), tonumber(s[3]))
  redis.call('HSET', uk, 'active', int(active))
  local went_offline = redis.call('ZCARD', uskey(room, uid)) == 0
  if went_offline then
    local seen = active
    if reason == 'disconnected' then seen = now end
    redis.call('HSET', uk, 'seen', int(seen))
    redis.call('ZADD', R(room) .. ':off', seen, uid)
    schedule('u\n' .. room .. '\n' .. uid, seen + retention)
    redis.call('SREM', P .. ':ur:' .. uid, room)
  else
    local latest = redis.call('ZRANGE', uskey(room, uid), -1, -1)
    redis.call('HSET', uk, 'name', redis.call('HGET', skey(room, latest[1]), 'name'))
  end
  local seq = next_seq(room)
  publish(room, '{"type":"left","seq":' .. seq .. ',"session_id":' .. js(sid) .. ',"reason":"' ..
    reason .. '","user":' .. user_json(room, uid) .. '}')
  if went_offline then enforce_offline_cap(room) end
  return true
end

local function updated(room, sid, uid)
  local seq = next_seq(room)
  publish(room, '{"type":"updated","seq":' .. seq .. ',"session_id":' .. js(sid) ..
    ',"user":' .. user_json(room, uid) .. '}')
end

-- The live session a token grants: room, session id, its owner.
local function resolve(token, as_user)
  local at = redis.call('GET', P .. ':tok:' .. token)
  if not at then return nil, {'err', 'invalid_session_token', ''} end
  local nl = string.find(at, '\n', 1, true)
  local room, sid = string.sub(at, 1, nl - 1), string.sub(at, nl + 1)
  local uid = redis.call('HGET', skey(room, sid), 'user')
  if not uid then return nil, {'err', 'invalid_session_token', ''} end
  if as_user ~= '' and uid ~= as_user then return nil, {'err', 'forbidden', ''} end
  return {room, sid, uid}
end

local ops = {}

-- room user sid token new_token name away(0/1) state_mode(keep|clear|set) state expires_at
-- max_per_room max_rooms_per_user max_sessions_per_user adoptable(0/1: the token, if this
-- joins, may be the new session's)  ->  {'ok', token, joined(0/1)}
function ops.heartbeat()
  local room, uid, sid, token = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local new_token = ARGV[10]
  local name, away, state_mode, state = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
  local expires_at = tonumber(ARGV[15])
  local sk = skey(room, sid)
  local member = 's\n' .. room .. '\n' .. sid
  local s = redis.call('HMGET', sk, 'user', 'tok', 'name', 'away', 'state')
  if s[1] then
    if token ~= s[2] then return {'err', 'session_token_mismatch', sid} end
    if s[1] ~= uid then return {'err', 'wrong_user', ''} end
    redis.call('HSET', sk, 'exp', ARGV[15], 'hb', ARGV[3])
    redis.call('HDEL', sk, 'grace')
    schedule(member, expires_at)
    local changed = false
    if s[3] ~= name then
      redis.call('HSET', sk, 'name', name)
      redis.call('HSET', ukey(room, uid), 'name', name)
      changed = true
    end
    if s[4] ~= away then
      redis.call('HSET', sk, 'away', away)
      changed = true
    end
    if state_mode == 'clear' and s[5] then
      redis.call('HDEL', sk, 'state')
      changed = true
    elseif state_mode == 'set' and s[5] ~= state then
      redis.call('HSET', sk, 'state', state)
      changed = true
    end
    if changed then updated(room, sid, uid) end
    return {'ok', s[2], '0'}
  end
  -- A new session: caps first, then everything at once.
  local ur = P .. ':ur:' .. uid
  local rooms = redis.call('SMEMBERS', ur)
  local here = redis.call('SISMEMBER', ur, room) == 1
  if not here and #rooms >= tonumber(ARGV[17]) then return {'err', 'too_many_rooms', ARGV[17]} end
  local held = 0
  for _, r in ipairs(rooms) do held = held + redis.call('ZCARD', uskey(r, uid)) end
  if held >= tonumber(ARGV[18]) then return {'err', 'too_many_sessions', ARGV[18]} end
  if redis.call('ZCARD', R(room) .. ':ss') >= tonumber(ARGV[16]) then
    return {'err', 'room_full', ARGV[16]}
  end
  -- The token the client proposed (see `Registry::join`) unless another live session holds it.
  if token ~= '' and ARGV[19] == '1' and redis.call('EXISTS', P .. ':tok:' .. token) == 0 then
    new_token = token
  end
  local seq = next_seq(room)
  redis.call('HSET', sk, 'user', uid, 'tok', new_token, 'name', name, 'away', away, 'ja', ARGV[3],
    'js', int(seq), 'exp', ARGV[15], 'hb', ARGV[3], 'subs', '0')
  if state_mode == 'set' then redis.call('HSET', sk, 'state', state) end
  redis.call('SET', P .. ':tok:' .. new_token, room .. '\n' .. sid)
  redis.call('ZADD', R(room) .. ':ss', seq, sid)
  redis.call('ZADD', uskey(room, uid), seq, sid)
  redis.call('SADD', R(room) .. ':uu', uid)
  local uk = ukey(room, uid)
  local u = redis.call('HMGET', uk, 'name', 'seen', 'active')
  if not u[1] or u[2] then
    -- Coming online (new, or back from offline): placed after those already online.
    redis.call('HSET', uk, 'since', int(seq))
    redis.call('HDEL', uk, 'seen')
    redis.call('ZREM', R(room) .. ':off', uid)
    redis.call('ZREM', DL, 'u\n' .. room .. '\n' .. uid)
    redis.call('SADD', ur, room)
  end
  redis.call('HSET', uk, 'name', name, 'active', int(math.max(tonumber(u[3] or '0'), now)))
  schedule(member, expires_at)
  publish(room, '{"type":"joined","seq":' .. seq .. ',"session_id":' .. js(sid) .. ',"user":' ..
    user_json(room, uid) .. '}')
  return {'ok', new_token, '1'}
end

-- token as_user what(state|away) value(JSON, "null", or 0/1)  ->  {'ok'}
function ops.update()
  local found, err = resolve(ARGV[6], ARGV[7])
  if not found then return err end
  local room, sid, uid = found[1], found[2], found[3]
  local sk = skey(room, sid)
  local changed = false
  if ARGV[8] == 'state' then
    local current = redis.call('HGET', sk, 'state')
    if ARGV[9] == 'null' then
      if current then redis.call('HDEL', sk, 'state'); changed = true end
    elseif current ~= ARGV[9] then
      redis.call('HSET', sk, 'state', ARGV[9])
      changed = true
    end
    if changed then
      local hb = tonumber(redis.call('HGET', sk, 'hb'))
      redis.call('HSET', sk, 'hb', int(math.max(hb, now)))
    end
  elseif redis.call('HGET', sk, 'away') ~= ARGV[9] then
    redis.call('HSET', sk, 'away', ARGV[9])
    changed = true
  end
  if changed then updated(room, sid, uid) end
  return {'ok'}
end

-- token as_user  ->  {'ok'}
function ops.disconnect()
  local found, err = resolve(ARGV[6], ARGV[7])
  if not found then return err end
  end_session(found[1], found[2], 'disconnected')
  return {'ok'}
end

-- limit  ->  {'ok', ended, next deadline or -1}. Each due entry is claimed (removed) here, so
-- exactly one server acts on it, however many run this at the same moment.
function ops.expire()
  -- One entry at a time, always the earliest due (ties by member): entries that ending a
  -- session queues (its user's retention) are handled in their turn within this same call, in
  -- the order the memory store's queue pops them.
  local handled = 0
  while handled < tonumber(ARGV[6]) do
    local next_due = redis.call('ZRANGEBYSCORE', DL, '-inf', now, 'LIMIT', 0, 1)
    local member = next_due[1]
    if not member then break end
    handled = handled + 1
    redis.call('ZREM', DL, member)
    local a = string.find(member, '\n', 1, true)
    local b = string.find(member, '\n', a + 1, true)
    local kind, room, id = string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1),
      string.sub(member, b + 1)
    if kind == 's' then
      local s = redis.call('HMGET', skey(room, id), 'exp', 'grace')
      if s[1] then
        local deadline = tonumber(s[1])
        if s[2] then deadline = math.min(deadline, tonumber(s[2])) end
        if deadline <= now then
          end_session(room, id, 'expired')
        else
          redis.call('ZADD', DL, deadline, member) -- extended since it was queued
        end
      end
    else
      local seen = redis.call('HGET', ukey(room, id), 'seen')
      if seen and tonumber(seen) + retention <= now then remove_user(room, id) end
    end
  end
  local first = redis.call('ZRANGE', DL, 0, 0, 'WITHSCORES')
  local next_at = -1
  if first[2] then next_at = tonumber(first[2]) end
  return {'ok', int(handled), int(next_at)}
end

-- room  ->  {'ok', seq, user JSON...} (unordered; the caller sorts)
function ops.snapshot()
  local room = ARGV[6]
  local out = {'ok', redis.call('GET', R(room) .. ':seq') or '0'}
  for _, uid in ipairs(redis.call('SMEMBERS', R(room) .. ':uu')) do
    local j = user_json(room, uid)
    if j then out[#out + 1] = j end
  end
  return out
end

-- user  ->  {'ok', room...}
function ops.list_user()
  local out = {'ok'}
  for _, room in ipairs(redis.call('SMEMBERS', P .. ':ur:' .. ARGV[6])) do out[#out + 1] = room end
  return out
end

-- room user  ->  {'ok', 0/1}
function ops.remove_room_user()
  return {'ok', remove_user(ARGV[6], ARGV[7]) and '1' or '0'}
end

-- room  ->  {'ok', 0/1}
function ops.remove_room()
  local any = '0'
  for _, uid in ipairs(redis.call('SMEMBERS', R(ARGV[6]) .. ':uu')) do
    if remove_user(ARGV[6], uid) then any = '1' end
  end
  return {'ok', any}
end

-- token as_user room  ->  {'ok', sid}: a subscription holds the session (no grace deadline).
function ops.hold()
  local found, err = resolve(ARGV[6], ARGV[7])
  if not found then return err end
  if found[1] ~= ARGV[8] then return {'err', 'invalid_session_token', ''} end
  local sk = skey(found[1], found[2])
  redis.call('HINCRBY', sk, 'subs', 1)
  redis.call('HDEL', sk, 'grace')
  return {'ok', found[2]}
end

-- room sid token grace_ms  ->  {'ok'}: the last hold gone, the session gets the grace deadline.
function ops.release()
  local room, sid = ARGV[6], ARGV[7]
  local sk = skey(room, sid)
  if redis.call('HGET', sk, 'tok') ~= ARGV[8] then return {'ok'} end
  if redis.call('HINCRBY', sk, 'subs', -1) <= 0 then
    redis.call('HSET', sk, 'subs', '0')
    local until_at = now + tonumber(ARGV[9])
    redis.call('HSET', sk, 'grace', int(until_at))
    schedule('s\n' .. room .. '\n' .. sid, until_at)
  end
  return {'ok'}
end

local run = ops[op]
if not run then return {'err', 'bad_request', 'unknown op ' .. tostring(op)} end
return run()
