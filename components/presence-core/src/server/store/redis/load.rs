//! What the rules need to decide one change in a room, read from Redis at one instant by
//! [`load.lua`](load.lua).

use super::keys::{self, RoomKeys};
use super::RedisPresence;
use crate::error::PresenceError;
use crate::server::rules::{Holdings, UserFacts};
use std::collections::HashMap;

/// What to read besides the room.
#[derive(Debug, Default)]
pub(super) struct Ask<'a> {
    /// A session (its hash); its user's facts are read too unless `user` is given.
    pub session: Option<&'a str>,
    /// The user whose facts to read (and, with `rooms`, its rooms).
    pub user: Option<&'a str>,
    /// Read the user's rooms (for the caps on a new session).
    pub rooms: bool,
    /// Whether this token is taken.
    pub token: Option<&'a str>,
}

/// A room as load.lua read it.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    /// The room's `seq`.
    pub seq: u64,
    /// Its `seq` key as stored (`""`: none), which every change commits on not having moved
    /// (see [`keys::seq_of`]).
    pub version: String,
    /// Live visible sessions in the room.
    pub sessions: usize,
    /// Live invisible sessions in the room.
    pub hidden: usize,
    /// Offline users listed.
    pub offline: usize,
    /// The session's hash (empty if there is no such session).
    pub session: HashMap<String, String>,
    /// The user read (`""` if none).
    pub user_id: String,
    /// Its facts, if the room lists it.
    pub user: Option<UserFacts>,
    /// The user's rooms: room → live sessions there.
    pub rooms: HashMap<String, i64>,
    /// The sessions the user holds: room, session id, since when.
    pub held: Vec<(String, String, u64)>,
    /// The version of the user's rooms (`""` if it has none).
    pub rooms_version: String,
    pub token_taken: bool,
    /// The offline users gone longest (every one tied at the earliest last seen).
    pub oldest_offline: Vec<(String, u64)>,
}

impl Loaded {
    pub fn field(&self, name: &str) -> &str {
        self.session.get(name).map_or("", String::as_str)
    }

    pub fn number(&self, name: &str) -> u64 {
        self.field(name).parse().unwrap_or(0)
    }

    /// What the user holds, for the caps on a new session in `room`.
    pub fn holdings(&self, room: &str) -> Holdings {
        Holdings {
            rooms: self.rooms.len(),
            here: self.rooms.contains_key(room),
            sessions: self.rooms.values().map(|n| (*n).max(0) as usize).sum(),
        }
    }
}

impl RedisPresence {
    pub(super) async fn load(
        &self,
        keys: &RoomKeys,
        ask: Ask<'_>,
    ) -> Result<Loaded, PresenceError> {
        let layout = &self.inner.layout;
        // The user's rooms in another slot (slot groups) are read apart; the commit is guarded
        // on their version all the same.
        let rooms_key = match (ask.rooms, ask.user) {
            (true, Some(user)) => Some(layout.user_rooms(user)),
            _ => None,
        };
        let apart = rooms_key
            .as_deref()
            .filter(|k| layout.slot(k) != layout.slot(&keys.seq()));
        let mut invocation = self.inner.load.prepare_invoke();
        invocation
            .key(keys.seq())
            .key(keys.users())
            .key(keys.offline())
            .key(keys.sessions())
            .key(keys.hidden());
        if let Some(sid) = ask.session {
            invocation.key(keys.session(sid));
        }
        let together = rooms_key.as_deref().filter(|_| apart.is_none());
        if let Some(key) = together {
            invocation.key(key);
        }
        if let Some(token) = ask.token {
            invocation.key(layout.token(token));
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        invocation
            .arg(ask.user.unwrap_or(""))
            .arg(flag(ask.session.is_some()))
            .arg(flag(together.is_some()))
            .arg(flag(ask.token.is_some()));
        let mut conn = self.inner.conn.clone();
        let reply: redis::Value = self.answered(invocation.invoke_async(&mut conn).await)?;
        let mut loaded = parse(reply).ok_or_else(|| super::malformed_reply("load"))?;
        if let Some(key) = apart {
            let rooms: redis::Value =
                self.answered(redis::cmd("HGETALL").arg(key).query_async(&mut conn).await)?;
            (loaded.rooms, loaded.held, loaded.rooms_version) =
                user_rooms(&rooms).ok_or_else(|| super::malformed_reply("load"))?;
        }
        Ok(loaded)
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(n) => Some(n.to_string()),
        redis::Value::Nil => Some(String::new()),
        _ => None,
    }
}

fn pairs(v: &redis::Value) -> Option<Vec<(String, String)>> {
    let redis::Value::Array(items) = v else {
        return None;
    };
    items
        .chunks(2)
        .map(|p| Some((text(p.first()?)?, text(p.get(1)?)?)))
        .collect()
}

/// What a user's rooms hash (`HGETALL`) holds: room → live sessions there, each session held
/// (room, id, since when), and the hash's version. (A field of an older layout, a room's bare
/// count, is not read.)
#[allow(clippy::type_complexity)]
fn user_rooms(
    hash: &redis::Value,
) -> Option<(HashMap<String, i64>, Vec<(String, String, u64)>, String)> {
    let mut version = String::new();
    let mut counts = HashMap::new();
    let mut held = Vec::new();
    for (field, value) in pairs(hash)? {
        if field == keys::VERSION_FIELD {
            version = value;
        } else if let Some((room, sid)) = keys::held_room(&field) {
            *counts.entry(room.to_string()).or_insert(0) += 1;
            held.push((
                room.to_string(),
                sid.to_string(),
                value.parse().unwrap_or(0),
            ));
        }
    }
    Some((counts, held, version))
}

fn parse(reply: redis::Value) -> Option<Loaded> {
    let redis::Value::Array(parts) = reply else {
        return None;
    };
    let [seq, sessions, offline, session, user_id, facts, rooms, token, oldest, hidden] =
        parts.as_slice()
    else {
        return None;
    };
    let facts = text(facts)?;
    let (room_counts, held, rooms_version) = user_rooms(rooms)?;
    let version = text(seq)?;
    Some(Loaded {
        seq: keys::seq_of(&version)?,
        version: if version == "0" {
            String::new()
        } else {
            version
        },
        sessions: text(sessions)?.parse().ok()?,
        hidden: text(hidden)?.parse().ok()?,
        offline: text(offline)?.parse().ok()?,
        session: pairs(session)?.into_iter().collect(),
        user_id: text(user_id)?,
        user: if facts.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&facts).ok()?)
        },
        rooms: room_counts,
        held,
        rooms_version,
        token_taken: text(token)? == "1",
        oldest_offline: pairs(oldest)?
            .into_iter()
            .map(|(id, at)| Some((id, at.parse().ok()?)))
            .collect::<Option<_>>()?,
    })
}
