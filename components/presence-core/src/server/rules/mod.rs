//! The rules of presence, written once: which new sessions the caps allow, which token a new
//! session gets, what a heartbeat or an update changes, what a leave does to its user (last seen,
//! retention), which offline user the cap drops, when a session's deadline is, and the message
//! every change emits.
//!
//! Pure functions over [`UserFacts`]: no store, no clock, no I/O. The memory store and the Redis
//! store both call them and only record what they decide (the memory store in its maps and
//! deadline queue; the Redis store through one atomic, guarded write, see
//! `store/redis/commit.lua`), so the two cannot disagree on a rule.

mod facts;
#[cfg(test)]
mod tests;

pub(crate) use facts::{snapshot, SessionFacts, UserFacts};

use crate::error::PresenceError;
use crate::server::config::PresenceConfig;
use crate::server::subscription::Occupancy;
use crate::server::token::SessionToken;
use crate::validate;
use crate::wire::{
    HeartbeatRequest, LeaveReason, PresenceKind, RoomMessage, SessionPresence, UserStatus,
};
use serde_json::Value;

/// What a user already holds, for the caps on a new session.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Holdings {
    /// Rooms where the user is online.
    pub rooms: usize,
    /// Whether one of them is the room being joined.
    pub here: bool,
    /// Live sessions across those rooms.
    pub sessions: usize,
}

/// Whether a new session of `kind` fits under the caps: rooms per user, sessions per user,
/// sessions per room (checked in that order). Every live session counts, invisible ones
/// included (so showing one never needs room). An agent's is not held to the per-user caps
/// (server-side code decides how many it runs), only to the room's.
pub(crate) fn check_join(
    config: &PresenceConfig,
    room: &str,
    room_sessions: usize,
    held: Holdings,
    kind: PresenceKind,
) -> Result<(), PresenceError> {
    let per_user = kind != PresenceKind::Agent;
    if per_user && !held.here && held.rooms >= config.max_rooms_per_user {
        return Err(PresenceError::TooManyRooms {
            limit: config.max_rooms_per_user,
        });
    }
    if per_user && held.sessions >= config.max_sessions_per_user {
        return Err(PresenceError::TooManySessions {
            limit: config.max_sessions_per_user,
        });
    }
    if room_sessions >= config.max_sessions_per_room {
        return Err(PresenceError::RoomFull {
            room: room.to_string(),
            limit: config.max_sessions_per_room,
        });
    }
    Ok(())
}

/// The token a new session gets. A token sent with a join is the client's proposal: a stale one
/// (the session ended, the store restarted) or a fresh one it made up. Adopting it makes a join
/// idempotent: if the call timed out after the store applied it, the retry (same session, same
/// token) finds its session instead of a ghost it may not touch. A proposal that does not look
/// random, or that another live session holds (`taken`), is not adopted.
pub(crate) fn session_token(
    proposed: Option<SessionToken>,
    taken: impl FnOnce(&SessionToken) -> bool,
) -> SessionToken {
    match proposed {
        Some(t) if t.looks_random() && !taken(&t) => t,
        _ => SessionToken::generate(),
    }
}

/// A new session from a join request (already validated; `name` as stored).
pub(crate) fn new_session(req: &HeartbeatRequest, name: &str, now: u64, seq: u64) -> SessionFacts {
    SessionFacts {
        id: req.session.clone(),
        name: name.to_string(),
        away: req.away,
        kind: req.kind,
        idle_since: idle_since(req, now),
        state: req.state.clone().and_then(non_null).map(Box::new),
        joined_at: now,
        joined_seq: seq,
    }
}

/// Adds a new session to its user (`UserFacts::unlisted()` if the room does not list the user).
/// A user coming online (new, or back from offline) is placed after those already online.
/// Returns whether the user came online. Emits [`Event::Joined`].
///
/// A session of that id the facts still hold (a store lost the session but not its user's
/// facts: Redis evicting a key) is replaced, never listed twice.
pub(crate) fn join(user: &mut UserFacts, session: SessionFacts, now: u64) -> bool {
    user.sessions.retain(|s| s.id != session.id);
    user.hidden.retain(|s| s.id != session.id);
    let came_online = !user.is_online();
    if came_online {
        user.online_since = session.joined_seq;
        user.last_seen = None;
    }
    user.name = session.name.clone();
    user.kind = session.kind;
    user.last_active = user.last_active.max(now);
    user.sessions.push(session);
    came_online
}

/// Adds a new invisible session to its user (`UserFacts::unlisted()` if the room does not list
/// the user): recorded, and nothing else about the user changes. Nobody is told.
pub(crate) fn join_hidden(user: &mut UserFacts, session: SessionFacts) {
    user.hidden.push(session);
}

/// An invisible session becomes visible, at `seq`: to others it joins now (one
/// [`Event::Joined`]); the user comes online if it was not. (It held its place under the room's
/// cap all along.) Returns whether it came online;
/// `None` if there is no such invisible session.
pub(crate) fn reveal(user: &mut UserFacts, session: &str, now: u64, seq: u64) -> Option<bool> {
    let at = user.hidden.iter().position(|s| s.id == session)?;
    let mut s = user.hidden.remove(at);
    s.joined_at = now;
    s.joined_seq = seq;
    Some(join(user, s, now))
}

/// A visible session becomes invisible at `now`: to others it leaves as `disconnected` (one
/// [`Event::Left`]); if it was the user's last visible one, the user shows offline, last seen
/// now, and is kept as offline until the returned time (its retention), as after a leave. The
/// session lives on, holding its token. `None` if there is no such visible session.
pub(crate) fn hide(
    user: &mut UserFacts,
    session: &str,
    now: u64,
    config: &PresenceConfig,
) -> Option<Option<u64>> {
    let at = user.sessions.iter().position(|s| s.id == session)?;
    let s = user.sessions.remove(at);
    user.hidden.push(s);
    match user.sessions.last() {
        Some(latest) => {
            shown_as(user, &latest.clone());
            Some(None)
        }
        None => {
            user.last_seen = Some(now);
            Some(Some(retention_until(now, config)))
        }
    }
}

/// An offline user's listing ends (its retention ran out, or the offline cap dropped it): one
/// [`Event::Removed`]. Returns whether its facts stay, unlisted: an invisible session of it
/// still lives (it is then as a user never seen, until it shows itself).
pub(crate) fn unlist(user: &mut UserFacts) -> bool {
    user.last_seen = None;
    user.has_sessions()
}

/// A user is shown with the name and kind of its latest visible session.
fn shown_as(user: &mut UserFacts, latest: &SessionFacts) {
    user.name.clone_from(&latest.name);
    user.kind = latest.kind;
}

/// What a request asks to change on one session: only what differs from it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Change {
    pub name: Option<String>,
    pub away: Option<bool>,
    /// `Some(Some(since))`: idle since then; `Some(None)`: active again.
    pub idle: Option<Option<u64>>,
    /// `Some(None)` clears the state.
    pub state: Option<Option<Box<Value>>>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.away.is_none() && self.idle.is_none() && self.state.is_none()
    }
}

/// Since when a heartbeat at `now` says its tab has been idle (`None`: active).
fn idle_since(req: &HeartbeatRequest, now: u64) -> Option<u64> {
    req.idle_for_ms.map(|ms| now.saturating_sub(ms))
}

/// What a heartbeat (at `now`) of a live session changes (refused if it claims another kind
/// than the session joined as). A new name or state is validated; an
/// unchanged one is not looked at again. `state: None` keeps the state, JSON `null` clears it.
/// Idle or not is a change only when it flips: an idle tab's heartbeats change nothing more.
pub(crate) fn heartbeat_change(
    current: &SessionFacts,
    req: &HeartbeatRequest,
    now: u64,
) -> Result<Change, PresenceError> {
    if req.kind != current.kind {
        return Err(PresenceError::BadRequest {
            message: format!(
                "session {} joined as {}; a session's kind is fixed at its join",
                current.id,
                current.kind.label()
            ),
        });
    }
    // Names are stored trimmed (see `validate`): compare the trimmed form.
    let name = validate::name_as_stored(&req.name);
    let mut change = Change::default();
    if current.name != name {
        validate::name(name)?;
        change.name = Some(name.to_string());
    }
    if current.away != req.away {
        change.away = Some(req.away);
    }
    if current.idle_since.is_some() != req.idle_for_ms.is_some() {
        change.idle = Some(idle_since(req, now));
    }
    change.state = match &req.state {
        Some(state) if state.is_null() => current.state.is_some().then_some(None),
        Some(state) if current.state.as_deref() != Some(state) => {
            validate::state(state)?;
            Some(Some(Box::new(state.clone())))
        }
        _ => None,
    };
    Ok(change)
}

/// What replacing a session's state changes (`null` clears it; `state` already validated).
pub(crate) fn state_change(current: &SessionFacts, state: Value) -> Change {
    let state = non_null(state).map(Box::new);
    Change {
        state: (current.state != state).then_some(state),
        ..Change::default()
    }
}

/// What marking a session away (or back) changes.
pub(crate) fn away_change(current: &SessionFacts, away: bool) -> Change {
    Change {
        away: (current.away != away).then_some(away),
        ..Change::default()
    }
}

/// Applies a change to one of the user's sessions; a visible one's new name is the user's name
/// too. Returns whether anything changed (then, for a visible session, [`Event::Updated`] is
/// emitted; an invisible one's change is told to nobody).
pub(crate) fn apply(user: &mut UserFacts, session: &str, change: Change) -> bool {
    if change.is_empty() {
        return false;
    }
    let shown = !user.is_hidden(session);
    let Some(s) = user.session_mut(session) else {
        return false;
    };
    if let Some(away) = change.away {
        s.away = away;
    }
    if let Some(idle) = change.idle {
        s.idle_since = idle;
    }
    if let Some(state) = change.state {
        s.state = state;
    }
    if let Some(name) = change.name {
        s.name.clone_from(&name);
        if shown {
            user.name = name;
        }
    }
    true
}

/// A session that changed its state counts as heard from now (a state update is activity).
pub(crate) fn heard_from(last_heartbeat: u64, now: u64) -> u64 {
    last_heartbeat.max(now)
}

/// What a leave did to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Left {
    /// Whether others saw it (a visible session): then [`Event::Left`] is emitted.
    pub shown: bool,
    /// `Some` if that was the user's last visible session: the room keeps it as offline until
    /// then (the end of its retention), whether or not an invisible session of it lives.
    pub retained_until: Option<u64>,
    /// The user is neither listed nor has a session (its only sessions were invisible): its
    /// facts go, and nobody is told.
    pub forgotten: bool,
}

/// Ends one of the user's sessions, whose latest heartbeat was `last_heartbeat`.
///
/// A visible one: the user's last activity folds it in; if it was the last visible session the
/// user goes offline, last seen now (a goodbye) or at its last activity (an expiry); otherwise
/// the user's name is that of its latest remaining session. An invisible one: nothing others
/// see changes (its heartbeats are not activity anyone is shown). `None` if the user has no such
/// session.
pub(crate) fn leave(
    user: &mut UserFacts,
    session: &str,
    last_heartbeat: u64,
    reason: LeaveReason,
    now: u64,
    config: &PresenceConfig,
) -> Option<Left> {
    let shown = if let Some(at) = user.hidden.iter().position(|s| s.id == session) {
        user.hidden.remove(at);
        false
    } else {
        let at = user.sessions.iter().position(|s| s.id == session)?;
        user.sessions.remove(at);
        user.last_active = user.last_active.max(last_heartbeat);
        if let Some(latest) = user.sessions.last() {
            shown_as(user, &latest.clone());
        } else {
            user.last_seen = Some(match reason {
                LeaveReason::Disconnected => now,
                LeaveReason::Expired => user.last_active,
            });
        }
        true
    };
    Some(Left {
        shown,
        retained_until: user
            .offline_since()
            .filter(|_| shown)
            .map(|since| retention_until(since, config)),
        forgotten: !user.is_listed() && !user.has_sessions(),
    })
}

/// When an offline user last seen at `last_seen` stops being listed.
pub(crate) fn retention_until(last_seen: u64, config: &PresenceConfig) -> u64 {
    last_seen.saturating_add(config.offline_retention_ms)
}

/// Whether a room listing `offline_users` offline users must drop one.
pub(crate) fn over_offline_cap(offline_users: usize, config: &PresenceConfig) -> bool {
    offline_users > config.max_offline_users_per_room
}

/// The offline user the cap drops: the longest gone; among those gone equally long, the greatest
/// user id (the last of them in the room's order).
pub(crate) fn offline_victim<'a>(
    offline: impl IntoIterator<Item = (&'a str, u64)>,
) -> Option<&'a str> {
    offline
        .into_iter()
        .min_by(|(ia, a), (ib, b)| a.cmp(b).then_with(|| ib.cmp(ia)))
        .map(|(id, _)| id)
}

/// When a session whose page said it is going (at `now`) ends, unless it heartbeats again first
/// (see [`PresenceConfig::leave_grace_ms`]).
pub(crate) fn goodbye_deadline(now: u64, config: &PresenceConfig) -> u64 {
    now.saturating_add(config.leave_grace_ms)
}

/// A grace deadline set while another may be pending: the earlier one holds.
pub(crate) fn earlier_grace(current: Option<u64>, until: u64) -> u64 {
    current.map_or(until, |g| g.min(until))
}

/// Whether a heartbeat that arrived at `heartbeat_at` takes back a grace (a goodbye's, a closed
/// socket's) set at `grace_set_at`: yes unless the grace was set after it (a goodbye that
/// overtook a heartbeat still being decided, or a heartbeat answered from memory and written
/// later). In the same millisecond the heartbeat wins, as it does when handled after it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn takes_back_grace(grace_set_at: Option<u64>, heartbeat_at: u64) -> bool {
    grace_set_at.is_none_or(|set| set <= heartbeat_at)
}

/// How a session whose deadline passed at `now` ends: if its page said it was going (at
/// `goodbye_at`) and nothing took that back, it disconnected then (its user last seen then);
/// otherwise it expired.
pub(crate) fn ending(goodbye_at: Option<u64>, now: u64) -> (LeaveReason, u64) {
    match goodbye_at {
        Some(at) => (LeaveReason::Disconnected, at.min(now)),
        None => (LeaveReason::Expired, now),
    }
}

/// When a session ends if nothing else happens: its heartbeat deadline, or its grace deadline
/// (set when its last subscription closed, or by a goodbye) if earlier.
pub(crate) fn session_deadline(expires_at: u64, grace_until: Option<u64>) -> u64 {
    grace_until.map_or(expires_at, |g| g.min(expires_at))
}

/// Whether a change that took a room from `before` live sessions to `after` occupied it (its
/// first) or vacated it (its last).
pub(crate) fn occupancy(before: usize, after: usize) -> Option<Occupancy> {
    match (before, after) {
        (0, 1..) => Some(Occupancy::Occupied),
        (1.., 0) => Some(Occupancy::Vacated),
        _ => None,
    }
}

/// Most user ids one status lookup takes.
pub(crate) const MAX_STATUS_LOOKUP: usize = 1_000;

/// A status lookup's ids, checked: at most [`MAX_STATUS_LOOKUP`], each a valid id.
pub(crate) fn check_status_lookup(user_ids: &[String]) -> Result<(), PresenceError> {
    if user_ids.len() > MAX_STATUS_LOOKUP {
        return Err(PresenceError::BadRequest {
            message: format!(
                "{} user ids asked at once; at most {MAX_STATUS_LOOKUP}",
                user_ids.len()
            ),
        });
    }
    user_ids
        .iter()
        .try_for_each(|id| validate::id(crate::error::Field::User, id))
}

/// A user across the rooms that list it: online if any listing is; otherwise last seen at the
/// latest of them.
pub(crate) fn user_status<'a>(
    user_id: &str,
    listings: impl IntoIterator<Item = &'a UserFacts>,
) -> UserStatus {
    let (mut online, mut last_seen) = (false, None::<u64>);
    for facts in listings {
        online |= facts.is_online();
        last_seen = last_seen.max(facts.last_seen);
    }
    UserStatus {
        user_id: user_id.to_string(),
        online,
        last_seen: if online { None } else { last_seen },
    }
}

/// A change of one user, as the room's subscribers are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Joined {
        session: String,
    },
    Updated {
        session: String,
    },
    Left {
        session: String,
        reason: LeaveReason,
    },
    /// The user is no longer listed (retention over, the offline cap, or removed by the app).
    Removed,
}

/// The message of one change at `seq`: the one place room diffs are made. `user` is the user
/// after the change (`None` only for [`Event::Removed`]). A diff carries the user's head and the
/// one session that changed, not the user's other sessions.
pub(crate) fn message(
    event: &Event,
    seq: u64,
    user_id: &str,
    user: Option<&UserFacts>,
) -> RoomMessage {
    let facts = || user.expect("a change of a listed user carries it");
    // The session that joined or changed, as others see it. Events are only made for visible
    // sessions; were one not found (a store's bug), the diff still names it, from whatever the
    // facts hold, rather than panic while a store holds its lock.
    let session = |id: &str| {
        let facts = facts();
        let found = facts.sessions.iter().find(|s| s.id == id);
        debug_assert!(found.is_some(), "session {id} of a diff is a visible one");
        found
            .or_else(|| facts.session(id))
            .map(SessionFacts::presence)
            .unwrap_or_else(|| SessionPresence::new(id, facts.name.clone()))
    };
    match event {
        Event::Joined { session: id } => RoomMessage::Joined {
            seq,
            session_id: id.clone(),
            user: facts().head(user_id),
            session: session(id),
        },
        Event::Updated { session: id } => RoomMessage::Updated {
            seq,
            session_id: id.clone(),
            user: facts().head(user_id),
            session: session(id),
        },
        Event::Left { session, reason } => RoomMessage::Left {
            seq,
            session_id: session.clone(),
            reason: *reason,
            user: facts().head(user_id),
        },
        Event::Removed => RoomMessage::Removed {
            seq,
            user_id: user_id.to_string(),
        },
    }
}

/// JSON `null` means "no state".
fn non_null(v: Value) -> Option<Value> {
    (!v.is_null()).then_some(v)
}
