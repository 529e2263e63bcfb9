//! Where the Redis store keeps things: every key name is made here (the scripts are given them).
//!
//! A room's keys start with `R = <prefix>:r:<length of the room id>:<room id>` (the length keeps
//! ids that contain `:` apart):
//!
//! | key | what |
//! |---|---|
//! | `R:seq` | the room's change number (the `seq` of its latest message), then `.<n>` after `n` changes nobody was told of (invisible sessions'): every change is guarded on it |
//! | `R:users` | hash: user id → that user's facts (`rules::UserFacts` as JSON) |
//! | `R:off` | sorted set: offline user id → last seen (for the offline cap) |
//! | `R:n` | how many sessions are live in the room |
//! | `R:h` | how many more live sessions the room has that are invisible (not in `R:n`) |
//! | `R:s:<sid>` | hash: one session's liveness: `user tok name away exp hb grace gs bye subs` (`gs`: when the grace was set) |
//! | `<prefix>:tok:<token>` | the session a token grants: `room "\n" session id` |
//! | `<prefix>:uh:<uid>` | hash: room → the user's live sessions there; field `"\n"`: a version |
//! | `<prefix>:ul:<uid>` | set of the rooms that list the user, online or offline |
//! | `<prefix>:dl` | sorted set of deadlines: `"s\n<room>\n<sid>"`, `"u\n<room>\n<uid>"` |
//!
//! Changes are published on `<prefix>:ev:<room>`; a deadline that became the earliest on
//! `<prefix>:wake`; a session token that got a grace on `<prefix>:forget`.

use crate::wire::PresenceKind;

/// The keys of one room.
pub(super) struct RoomKeys {
    base: String,
    prefix: String,
    room: String,
}

impl RoomKeys {
    pub fn new(prefix: &str, room: &str) -> Self {
        RoomKeys {
            base: format!("{prefix}:r:{}:{room}", room.len()),
            prefix: prefix.to_string(),
            room: room.to_string(),
        }
    }

    pub fn room(&self) -> &str {
        &self.room
    }

    pub fn seq(&self) -> String {
        format!("{}:seq", self.base)
    }

    pub fn users(&self) -> String {
        format!("{}:users", self.base)
    }

    pub fn offline(&self) -> String {
        format!("{}:off", self.base)
    }

    pub fn sessions(&self) -> String {
        format!("{}:n", self.base)
    }

    /// How many of the room's live sessions are invisible.
    pub fn hidden(&self) -> String {
        format!("{}:h", self.base)
    }

    pub fn session(&self, sid: &str) -> String {
        format!("{}:s:{sid}", self.base)
    }

    /// The channel its changes are published on.
    pub fn channel(&self) -> String {
        format!("{}:ev:{}", self.prefix, self.room)
    }

    /// A session's member in the deadline set.
    pub fn session_deadline(&self, sid: &str) -> String {
        format!("s\n{}\n{sid}", self.room)
    }

    /// An offline user's member in the deadline set (the end of its retention).
    pub fn retention_deadline(&self, uid: &str) -> String {
        format!("u\n{}\n{uid}", self.room)
    }
}

pub(super) fn token(prefix: &str, token: &str) -> String {
    format!("{prefix}:tok:{token}")
}

pub(super) fn user_rooms(prefix: &str, uid: &str) -> String {
    format!("{prefix}:uh:{uid}")
}

/// The rooms that list a user (online or offline), for status lookups.
pub(super) fn user_listed(prefix: &str, uid: &str) -> String {
    format!("{prefix}:ul:{uid}")
}

pub(super) fn deadlines(prefix: &str) -> String {
    format!("{prefix}:dl")
}

pub(super) fn wake(prefix: &str) -> String {
    format!("{prefix}:wake")
}

/// The channel on which a token that no server may answer for from memory any more is
/// announced (its session got a grace: see `touches`).
pub(super) fn forget(prefix: &str) -> String {
    format!("{prefix}:forget")
}

/// What a session hash's `away` field holds, for the fast path to compare: `0` active, `1` away
/// (tab hidden), `2` idle; after an `h` if the session is invisible, and after an `a` if it is an
/// agent's (so that a heartbeat turning invisible on or off, or claiming the other kind, does not
/// match, and takes the full path, where the rules decide).
pub(super) fn status_mark(
    away: bool,
    idle: bool,
    kind: PresenceKind,
    invisible: bool,
) -> &'static str {
    const MARKS: [&str; 12] = [
        "0", "1", "2", "h0", "h1", "h2", "a0", "a1", "a2", "ah0", "ah1", "ah2",
    ];
    let status = match (away, idle) {
        (true, _) => 1,
        (false, true) => 2,
        (false, false) => 0,
    };
    let agent = usize::from(kind == PresenceKind::Agent);
    MARKS[agent * 6 + usize::from(invisible) * 3 + status]
}

/// The room's seq, from its `seq` key: `<seq>`, or `<seq>.<n>` after `n` changes since it that
/// nobody was told of (invisible sessions'); every change is guarded on the whole value.
pub(super) fn seq_of(stored: &str) -> Option<u64> {
    stored.split('.').next()?.parse().ok()
}

/// A room channel's payload: the message's JSON, after `o\n` when it occupied the room or `v\n`
/// when it vacated it (so that every server's `changes()` can tell; subscribers get the JSON).
pub(super) fn with_occupancy(
    occupancy: Option<crate::server::subscription::Occupancy>,
    json: String,
) -> String {
    use crate::server::subscription::Occupancy;
    match occupancy {
        Some(Occupancy::Occupied) => format!("o\n{json}"),
        Some(Occupancy::Vacated) => format!("v\n{json}"),
        _ => json,
    }
}

/// A room channel's payload read back: the occupancy, if any, and the message's JSON.
pub(super) fn read_occupancy(
    payload: String,
) -> (Option<crate::server::subscription::Occupancy>, String) {
    use crate::server::subscription::Occupancy;
    match payload.get(..2) {
        Some("o\n") => (Some(Occupancy::Occupied), payload[2..].to_string()),
        Some("v\n") => (Some(Occupancy::Vacated), payload[2..].to_string()),
        _ => (None, payload),
    }
}

/// The version field of a user's rooms hash (no room id contains a control character).
pub(super) const VERSION_FIELD: &str = "\n";
