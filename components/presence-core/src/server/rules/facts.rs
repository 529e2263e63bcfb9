//! What the rules know of a room's user and its sessions, and how it is shown on the wire.
//!
//! Both stores keep a user as [`UserFacts`]: the memory store in its room map, the Redis store as
//! the JSON of this type in the room's users hash. Liveness (tokens, deadlines, grace,
//! subscriptions, rates) is each store's own; it is not part of the facts.

use crate::room_view::room_order;
use crate::wire::{
    PresenceKind, RoomSnapshot, SessionPresence, SessionStatus, UserHead, UserPresence,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One live session as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SessionFacts {
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "a", default, skip_serializing_if = "std::ops::Not::not")]
    pub away: bool,
    #[serde(rename = "k", default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    /// While idle: since when (its last input).
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<u64>,
    /// Boxed: most sessions have none.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<Value>>,
    #[serde(rename = "t")]
    pub joined_at: u64,
    #[serde(rename = "q")]
    pub joined_seq: u64,
}

/// One listed user of a room (online or offline) with its live sessions in join order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserFacts {
    #[serde(rename = "n")]
    pub name: String,
    /// The kind of the user's latest session.
    #[serde(rename = "k", default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    #[serde(rename = "o")]
    pub online_since: u64,
    /// `None` while online.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Latest heartbeat of the user's sessions that have ended (folded in as each ends), so
    /// the heartbeat path never touches the user.
    #[serde(rename = "a")]
    pub last_active: u64,
    #[serde(rename = "s", default)]
    pub sessions: Vec<SessionFacts>,
    /// Invisible sessions: live, holding their tokens, watching, but in no list, count, diff or
    /// status anyone is shown. A user whose sessions are all invisible is shown as if they were
    /// not there: not at all if it was not listed, offline as last seen if it was.
    #[serde(rename = "h", default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<SessionFacts>,
}

impl UserFacts {
    /// A user not listed yet: what [`super::join`] starts from.
    pub fn unlisted() -> Self {
        UserFacts {
            name: String::new(),
            kind: PresenceKind::Person,
            online_since: 0,
            last_seen: None,
            last_active: 0,
            sessions: Vec::new(),
            hidden: Vec::new(),
        }
    }

    /// Online as others see it: a visible session lives.
    pub fn is_online(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Shown in the room's list: online, or offline with a last seen.
    pub fn is_listed(&self) -> bool {
        self.is_online() || self.last_seen.is_some()
    }

    /// Any session lives, visible or not.
    pub fn has_sessions(&self) -> bool {
        !self.sessions.is_empty() || !self.hidden.is_empty()
    }

    /// Every live session, visible or not.
    pub fn session_count(&self) -> usize {
        self.sessions.len() + self.hidden.len()
    }

    /// A live session, visible or not.
    pub fn session(&self, id: &str) -> Option<&SessionFacts> {
        self.sessions
            .iter()
            .chain(&self.hidden)
            .find(|s| s.id == id)
    }

    pub fn session_mut(&mut self, id: &str) -> Option<&mut SessionFacts> {
        self.sessions
            .iter_mut()
            .chain(&mut self.hidden)
            .find(|s| s.id == id)
    }

    /// Whether that session is an invisible one.
    pub fn is_hidden(&self, id: &str) -> bool {
        self.hidden.iter().any(|s| s.id == id)
    }

    /// When the offline user's retention counts from, while the room lists it as offline
    /// (whether or not an invisible session of it lives: its listing runs out, and the offline
    /// cap may drop it, as if that session were not there).
    pub fn offline_since(&self) -> Option<u64> {
        self.last_seen.filter(|_| !self.is_online())
    }

    /// The user as the wire shows it: the one place a [`UserPresence`] is made.
    pub fn presence(&self, user_id: &str) -> UserPresence {
        self.head(user_id)
            .with_sessions(self.sessions.iter().map(SessionFacts::presence).collect())
    }

    /// The user without its sessions, as a diff shows it: the one place a [`UserHead`] is made.
    pub fn head(&self, user_id: &str) -> UserHead {
        let statuses = self.sessions.iter().map(SessionFacts::status);
        UserHead {
            user_id: user_id.to_string(),
            name: self.name.clone(),
            kind: self.kind,
            online: self.is_online(),
            away: crate::wire::user_away(statuses.clone()),
            idle: crate::wire::user_idle(statuses),
            online_since: self.online_since,
            last_seen: self.last_seen,
        }
    }
}

impl SessionFacts {
    /// Away (hidden), idle (no input for a while) or active.
    pub fn status(&self) -> SessionStatus {
        if self.away {
            SessionStatus::Away
        } else if self.idle_since.is_some() {
            SessionStatus::Idle
        } else {
            SessionStatus::Active
        }
    }

    pub fn presence(&self) -> SessionPresence {
        SessionPresence {
            session_id: self.id.clone(),
            name: self.name.clone(),
            status: self.status(),
            kind: self.kind,
            idle_since: self.idle_since.filter(|_| !self.away),
            state: self.state.as_deref().cloned(),
            joined_at: self.joined_at,
            joined_seq: self.joined_seq,
        }
    }
}

/// A room's snapshot from its users, in the room's order (see [`room_order`]).
pub(crate) fn snapshot<'a>(
    room: &str,
    seq: u64,
    users: impl IntoIterator<Item = (&'a str, &'a UserFacts)>,
) -> RoomSnapshot {
    let mut users: Vec<UserPresence> = users
        .into_iter()
        .filter(|(_, facts)| facts.is_listed())
        .map(|(id, facts)| facts.presence(id))
        .collect();
    users.sort_by(room_order);
    RoomSnapshot {
        room: room.to_string(),
        seq,
        users,
    }
}
