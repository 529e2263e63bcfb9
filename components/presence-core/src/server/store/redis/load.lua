-- load: what the rules (Rust, `server/rules`) need to decide one change in a room, read at one
-- instant. Nothing is decided or written here: the decision is committed by commit.lua, guarded
-- by what this returned (the room's seq above all).
--
--   KEYS[1] R:seq    the room's change number         KEYS[2] R:users  hash user id -> facts JSON
--   KEYS[3] R:off    zset offline user -> last_seen   KEYS[4] R:n      live sessions in the room
--   KEYS[5] R:h      invisible live sessions in the room (not in R:n)
--   then, as ARGV says they are present, in this order:
--   a session's hash (R:s:<sid>), the user's rooms (U:uh:<uid>, only when it is in the room's
--   slot: with slot groups it is read apart), a token (T:tok:<token>, in the room's group)
--   ARGV[1] the user whose facts to read ('' = the session's user)
--   ARGV[2] ARGV[3] ARGV[4]  '1' if the session hash, the user's rooms, the token are in KEYS
--
-- Returns {seq, sessions in the room, offline users, {session hash fields and values},
--   user id, user facts JSON or '', {user's rooms hash}, token taken (1/0),
--   {offline users gone longest: id, last_seen, ...; every one tied at the earliest},
--   invisible sessions in the room}
local k = 6
local session, rooms, token = {}, {}, 0
if ARGV[2] == '1' then session = redis.call('HGETALL', KEYS[k]); k = k + 1 end
if ARGV[3] == '1' then rooms = redis.call('HGETALL', KEYS[k]); k = k + 1 end
if ARGV[4] == '1' then token = redis.call('EXISTS', KEYS[k]) end
local user = ARGV[1]
if user == '' then
  for i = 1, #session, 2 do
    if session[i] == 'user' then user = session[i + 1] end
  end
end
local facts = ''
if user ~= '' then facts = redis.call('HGET', KEYS[2], user) or '' end
local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local ties = {}
if oldest[2] then ties = redis.call('ZRANGEBYSCORE', KEYS[3], oldest[2], oldest[2], 'WITHSCORES') end
return {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[4]) or '0',
  redis.call('ZCARD', KEYS[3]), session, user, facts, rooms, token, ties,
  redis.call('GET', KEYS[5]) or '0'}
