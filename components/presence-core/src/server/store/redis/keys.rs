//! Where the Redis store keeps things: every key name is made here (the scripts are given them).
//!
//! Keys are spread over **slot groups** ([`Layout`]): with `redis_slot_groups = 1` (the
//! default) every key starts with the prefix (`presence`, or `{presence}` on a Cluster: one
//! slot). With `G > 1` groups, a room's keys, the tokens of its sessions and its deadlines start
//! with the hash tag of its group, `{<prefix>:<g>}` (`g` = a hash of the room id mod `G`), and a
//! user's keys with its own group's; on a Cluster the groups spread over the shards. A change
//! in one room is then still one atomic script in one slot; what a change also writes in its
//! user's group (when that is another) is written before or after it (see
//! [`commit`](super::commit)).
//!
//! A room's keys start with `R = T:r:<length of the room id>:<room id>` (`T`: its group's tag;
//! the length keeps ids that contain `:` apart):
//!
//! | key | what |
//! |---|---|
//! | `R:seq` | the room's change number (the `seq` of its latest message), then `.<n>` after `n` changes nobody was told of (invisible sessions'): every change is guarded on it |
//! | `R:users` | hash: user id → that user's facts (`rules::UserFacts` as JSON) |
//! | `R:off` | sorted set: offline user id → last seen (for the offline cap) |
//! | `R:n` | how many sessions are live in the room |
//! | `R:h` | how many more live sessions the room has that are invisible (not in `R:n`) |
//! | `R:s:<sid>` | hash: one session's liveness: `user tok name away exp hb grace gs bye subs` (`gs`: when the grace was set) |
//! | `T:tok:<token>` | the session a token grants: `room "\n" session id` (a token is made in its room's group: [`Layout::token_group`]) |
//! | `T:dl` | sorted set of the group's deadlines: `"s\n<room>\n<sid>"`, `"u\n<room>\n<uid>"` |
//! | `U:uh:<uid>` | hash: `<room>\n<sid>` → since when the user holds that session (for the per-user caps); field `"\n"`: a version (`U`: the user's group's tag) |
//! | `U:ul:<uid>` | set of the rooms that list the user, online or offline |
//! | `T:epoch` | the group's epoch, gone when Redis lost the group's data (with one group, `T` is the prefix) |
//! | `D:rate:…` | shared rates (`D`: the prefix, or `{prefix}` with groups) |
//!
//! Changes are published on `<prefix>:ev:<room>`; a deadline that became the earliest of its
//! group on `<prefix>:wake`; a session token that got a grace on `<prefix>:forget`.

use crate::wire::PresenceKind;

/// How a deployment's keys are named and spread over slots (see the module's docs).
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The prefix as configured (without groups, as used: `{presence}` on a Cluster).
    prefix: String,
    groups: u32,
}

impl Layout {
    /// The layout for a configured prefix; `groups` ≥ 1 (see [`super::conn::prefix`]).
    pub fn new(configured: &str, cluster: bool, groups: u32) -> Self {
        let groups = groups.max(1);
        Layout {
            prefix: if groups == 1 {
                super::conn::prefix(configured, cluster)
            } else {
                configured.to_string()
            },
            groups,
        }
    }

    /// How many slot groups.
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// The prefix of channels (and, with one group, of every key).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tag that starts every key of group `g`.
    fn tag(&self, g: u32) -> String {
        if self.groups == 1 {
            self.prefix.clone()
        } else {
            format!("{{{}:{g}}}", self.prefix)
        }
    }

    /// The group of a room or a user id.
    pub fn group_of(&self, id: &str) -> u32 {
        // FNV-1a: stable across processes and versions (every server must agree).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(self.groups)) as u32
    }

    /// The group of a session token (hex): its first 4 hex digits mod the groups (0 if it is
    /// not hex). See [`Layout::token_in_group`].
    pub fn token_group(&self, token: &str) -> u32 {
        token
            .get(..4)
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .map_or(0, |v| u32::from(v) % self.groups)
    }

    /// `token` made to belong to group `g`: its first two bytes are moved to the nearest value
    /// of that group (the other 240 bits stay as they were). A token already there is kept.
    pub fn token_in_group(
        &self,
        token: crate::server::token::SessionToken,
        g: u32,
    ) -> crate::server::token::SessionToken {
        let hex = token.to_hex();
        if self.groups == 1 {
            return token;
        }
        let v = u32::from(u16::from_str_radix(&hex[..4], 16).expect("tokens are hex"));
        let mut moved = v - v % self.groups + g;
        if moved > u32::from(u16::MAX) {
            moved -= self.groups;
        }
        crate::server::token::SessionToken::parse(&format!("{moved:04x}{}", &hex[4..]))
            .expect("still 64 hex digits")
    }

    /// The keys of one room.
    pub fn room(&self, room: &str) -> RoomKeys {
        let tag = self.tag(self.group_of(room));
        RoomKeys {
            base: format!("{tag}:r:{}:{room}", room.len()),
            deadlines: format!("{tag}:dl"),
            group: self.group_of(room),
            prefix: self.prefix.clone(),
            room: room.to_string(),
        }
    }

    pub fn token(&self, token: &str) -> String {
        format!("{}:tok:{token}", self.tag(self.token_group(token)))
    }

    pub fn user_rooms(&self, uid: &str) -> String {
        format!("{}:uh:{uid}", self.tag(self.group_of(uid)))
    }

    /// The rooms that list a user (online or offline), for status lookups.
    pub fn user_listed(&self, uid: &str) -> String {
        format!("{}:ul:{uid}", self.tag(self.group_of(uid)))
    }

    /// Group `g`'s deadlines.
    pub fn deadlines(&self, g: u32) -> String {
        format!("{}:dl", self.tag(g))
    }

    pub fn wake(&self) -> String {
        format!("{}:wake", self.prefix)
    }

    /// The channel on which a token that no server may answer for from memory any more is
    /// announced (its session got a grace: see `touches`).
    pub fn forget(&self) -> String {
        format!("{}:forget", self.prefix)
    }

    /// What room channels start with.
    pub fn events(&self) -> String {
        format!("{}:ev:", self.prefix)
    }

    /// Group `g`'s epoch (with one group: the store's), gone when Redis lost its data.
    pub fn epoch(&self, g: u32) -> String {
        format!("{}:epoch", self.tag(g))
    }

    /// The start of the keys that belong to no room or user (shared rates).
    pub fn shared(&self) -> String {
        if self.groups == 1 {
            self.prefix.clone()
        } else {
            format!("{{{}}}", self.prefix)
        }
    }
}

impl Layout {
    /// Which slot `key` is in, as far as cutting a batch goes: with one group every key of the
    /// store is in one (`""`), else the key's hash tag (see [`slot_tag`]).
    pub fn slot<'k>(&self, key: &'k str) -> &'k str {
        if self.groups == 1 {
            ""
        } else {
            slot_tag(key)
        }
    }
}

/// The part of a key that Redis Cluster hashes to pick its slot: the first `{…}` with
/// something inside, else the whole key.
pub(super) fn slot_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The keys of one room.
pub(super) struct RoomKeys {
    base: String,
    deadlines: String,
    group: u32,
    prefix: String,
    room: String,
}

impl RoomKeys {
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The room's slot group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Its group's deadline set.
    pub fn deadlines(&self) -> &str {
        &self.deadlines
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

/// A session's field in its user's rooms hash (`U:uh:<uid>`): `<room>\n<sid>`, its value the
/// time it was held from. No id contains a control character, so the room comes back whole.
pub(super) fn held_session(room: &str, sid: &str) -> String {
    format!("{room}\n{sid}")
}

/// The room and session of a field of a user's rooms hash (see [`held_session`]); `None` for
/// its version field, or a field of an older layout.
pub(super) fn held_room(field: &str) -> Option<(&str, &str)> {
    field.split_once('\n').filter(|(room, _)| !room.is_empty())
}

/// The version field of a user's rooms hash (no room id contains a control character).
pub(super) const VERSION_FIELD: &str = "\n";

#[cfg(test)]
mod tests {
    use super::{slot_tag, Layout};
    use crate::server::token::SessionToken;

    #[test]
    fn one_group_keeps_the_prefix_as_it_was() {
        let single = Layout::new("presence", false, 1);
        assert_eq!(single.room("r1").seq(), "presence:r:2:r1:seq");
        assert_eq!(single.user_rooms("ann"), "presence:uh:ann");
        assert_eq!(single.deadlines(0), "presence:dl");
        let cluster = Layout::new("presence", true, 1);
        assert_eq!(cluster.room("r1").seq(), "{presence}:r:2:r1:seq");
        assert_eq!(slot_tag(&cluster.token("ab")), "presence");
    }

    #[test]
    fn with_groups_a_room_its_tokens_and_deadlines_share_a_slot() {
        let layout = Layout::new("presence", true, 16);
        let mut groups = std::collections::BTreeSet::new();
        for i in 0..200 {
            let room = format!("room-{i}");
            let keys = layout.room(&room);
            groups.insert(keys.group());
            let token = layout
                .token_in_group(SessionToken::generate(), keys.group())
                .to_hex();
            assert_eq!(layout.token_group(&token), keys.group());
            for key in [keys.users(), keys.session("s1"), layout.token(&token)] {
                assert_eq!(slot_tag(&key), slot_tag(&keys.seq()), "{key}");
            }
            assert_eq!(slot_tag(keys.deadlines()), slot_tag(&keys.seq()));
        }
        assert_eq!(groups.len(), 16, "200 rooms reach every group");
        // Stable across processes: FNV-1a, not a randomly seeded hash.
        assert_eq!(layout.group_of("room-0"), layout.group_of("room-0"));
        assert_eq!(
            Layout::new("x", false, 7).group_of(""),
            (0xcbf2_9ce4_8422_2325u64 % 7) as u32
        );
        // A token already in its group is kept as it is.
        let kept = layout.token_in_group(SessionToken::generate(), 3);
        assert!(layout.token_in_group(kept, 3) == kept);
        // The first two bytes at their largest still land in range.
        let top = SessionToken::parse(&format!("ffff{}", "0".repeat(60))).unwrap();
        for g in 0..16 {
            let moved = layout.token_in_group(top, g).to_hex();
            assert_eq!(layout.token_group(&moved), g);
            assert_eq!(moved[4..], top.to_hex()[4..]);
        }
    }
}
