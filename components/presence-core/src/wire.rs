//! Types that cross the wire between the presence server and its clients (JSON via serde).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a session is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionStatus {
    /// The tab is visible and heartbeating.
    #[default]
    Active,
    /// The tab is hidden: still present, shown dimmed.
    Away,
    /// The tab is visible but has had no input for a while (`idle_after_ms`): still present,
    /// shown dimmed, with how long it has been idle (`idle_since`).
    Idle,
}

/// Who is present: a person in a browser (the default) or server-side code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PresenceKind {
    /// A person, in a browser tab.
    #[default]
    Person,
    /// Server-side code: an AI agent, a bot, an import job. Kept alive by the server (see
    /// `Presence::join_agent`) or by a separate process over HTTP; not counted against the
    /// per-user caps. `<FacePile/>` marks it (`data-presence-kind="agent"`).
    Agent,
}

impl PresenceKind {
    /// `person` or `agent`: the value of the `data-presence-kind` attribute.
    pub fn label(self) -> &'static str {
        match self {
            PresenceKind::Person => "person",
            PresenceKind::Agent => "agent",
        }
    }

    /// True for [`PresenceKind::Person`] (for `skip_serializing_if`).
    pub fn is_person(&self) -> bool {
        *self == PresenceKind::Person
    }
}

/// One live session (one browser tab) of a user in a room.
///
/// Fields will be added (non-exhaustive): build one with [`SessionPresence::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionPresence {
    /// The client-chosen session id (public; acting on a session needs its token).
    pub session_id: String,
    /// The display name this session reported.
    pub name: String,
    /// Active, away (hidden) or idle (no input for a while).
    pub status: SessionStatus,
    /// A person's tab, or an agent (server-side code).
    #[serde(default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    /// While idle: since when, in milliseconds since the Unix epoch (its last input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<u64>,
    /// App-defined JSON state, if any was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    /// When the session joined, in milliseconds since the Unix epoch.
    pub joined_at: u64,
    /// Order key: sessions of a user are listed by this, ascending (join order).
    pub joined_seq: u64,
}

impl SessionPresence {
    /// An active session without state, joined at time 0 with order key 0; set the other fields
    /// as needed.
    pub fn new(session_id: impl Into<String>, name: impl Into<String>) -> Self {
        SessionPresence {
            session_id: session_id.into(),
            name: name.into(),
            status: SessionStatus::Active,
            kind: PresenceKind::Person,
            idle_since: None,
            state: None,
            joined_at: 0,
            joined_seq: 0,
        }
    }

    /// The state decoded as the app's own type (`None` if absent or of another shape).
    ///
    /// ```
    /// # use presence_core::wire::SessionPresence;
    /// #[derive(serde::Deserialize, PartialEq, Debug)]
    /// struct Cursor { section: String }
    /// let mut s = SessionPresence::new("s", "Ada");
    /// s.state = Some(serde_json::json!({"section": "intro"}));
    /// assert_eq!(s.state_as::<Cursor>(), Some(Cursor { section: "intro".into() }));
    /// ```
    pub fn state_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.state
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// One user of a room: online while any session lives, offline (with `last_seen`) after.
///
/// Fields will be added (non-exhaustive): build one with [`UserPresence::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserPresence {
    /// The user id.
    pub user_id: String,
    /// The display name: that of the user's most recent heartbeat.
    pub name: String,
    /// A person, or an agent (server-side code): the kind of the user's latest session.
    #[serde(default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    /// True while any session lives.
    pub online: bool,
    /// True when every live session is away (and there is at least one).
    pub away: bool,
    /// True when no live session is active and at least one is idle (none of it hidden-only).
    #[serde(default)]
    pub idle: bool,
    /// Order key of online users: the room sequence number at which the user last came online.
    pub online_since: u64,
    /// When the user was last seen, in milliseconds since the Unix epoch; `None` while online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Live sessions, in join order. Empty when offline.
    pub sessions: Vec<SessionPresence>,
}

impl UserPresence {
    /// A user online with `sessions` (offline, never seen, if it is empty), with order key 0;
    /// set the other fields as needed.
    pub fn new(
        user_id: impl Into<String>,
        name: impl Into<String>,
        sessions: Vec<SessionPresence>,
    ) -> Self {
        UserPresence {
            user_id: user_id.into(),
            name: name.into(),
            kind: PresenceKind::Person,
            online: !sessions.is_empty(),
            away: user_away(sessions.iter().map(|s| s.status)),
            idle: user_idle(sessions.iter().map(|s| s.status)),
            online_since: 0,
            last_seen: None,
            sessions,
        }
    }

    /// The user without its sessions: what a diff says of it.
    pub fn head(&self) -> UserHead {
        UserHead {
            user_id: self.user_id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            online: self.online,
            away: self.away,
            idle: self.idle,
            online_since: self.online_since,
            last_seen: self.last_seen,
        }
    }

    /// `online`, `idle`, `away` or `offline`: the value of the `data-presence-status` attribute.
    pub fn status_label(&self) -> &'static str {
        status_label(self.online, self.away, self.idle)
    }

    /// Since when the user has been idle (the latest `idle_since` of its idle sessions), while
    /// [`UserPresence::idle`].
    pub fn idle_since(&self) -> Option<u64> {
        if !self.idle {
            return None;
        }
        self.sessions.iter().filter_map(|s| s.idle_since).max()
    }
}

/// The label of a user's status (`data-presence-status`).
fn status_label(online: bool, away: bool, idle: bool) -> &'static str {
    match (online, away, idle) {
        (false, _, _) => "offline",
        (true, true, _) => "away",
        (true, false, true) => "idle",
        (true, false, false) => "online",
    }
}

/// A user is away when it has live sessions and every one is away.
pub(crate) fn user_away(mut statuses: impl Iterator<Item = SessionStatus> + Clone) -> bool {
    statuses.clone().next().is_some() && statuses.all(|s| s == SessionStatus::Away)
}

/// A user is idle when no live session is active and at least one is idle.
pub(crate) fn user_idle(mut statuses: impl Iterator<Item = SessionStatus> + Clone) -> bool {
    !statuses.clone().any(|s| s == SessionStatus::Active)
        && statuses.any(|s| s == SessionStatus::Idle)
}

/// A user as a diff shows it: every field of [`UserPresence`] but its sessions. A diff carries
/// the one session that changed beside it, not the user's other sessions (see [`RoomMessage`]);
/// `online`, `away` and `idle` are as they are after the change, across all the user's sessions.
///
/// ```
/// use presence_core::wire::{SessionPresence, UserPresence};
/// let ada = UserPresence::new("ada", "Ada", vec![SessionPresence::new("t1", "Ada")]);
/// let head = ada.head();
/// assert_eq!((head.user_id.as_str(), head.online), ("ada", true));
/// assert_eq!(head.with_sessions(ada.sessions.clone()), ada);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserHead {
    /// The user id.
    pub user_id: String,
    /// The display name: that of the user's most recent heartbeat.
    pub name: String,
    /// A person, or an agent: the kind of the user's latest session.
    #[serde(default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    /// True while any session lives.
    pub online: bool,
    /// True when every live session is away (and there is at least one).
    pub away: bool,
    /// True when no live session is active and at least one is idle.
    #[serde(default)]
    pub idle: bool,
    /// Order key of online users: the room sequence number at which the user last came online.
    pub online_since: u64,
    /// When the user was last seen, in milliseconds since the Unix epoch; `None` while online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
}

impl UserHead {
    /// `online`, `idle`, `away` or `offline`, as [`UserPresence::status_label`].
    pub fn status_label(&self) -> &'static str {
        status_label(self.online, self.away, self.idle)
    }

    /// The whole user: this head with `sessions` (in join order).
    pub fn with_sessions(self, sessions: Vec<SessionPresence>) -> UserPresence {
        UserPresence {
            user_id: self.user_id,
            name: self.name,
            kind: self.kind,
            online: self.online,
            away: self.away,
            idle: self.idle,
            online_since: self.online_since,
            last_seen: self.last_seen,
            sessions,
        }
    }
}

/// One user across every room: online anywhere, or when last seen (a member list's dot).
/// From [`crate::server::Presence::users_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserStatus {
    /// The user id asked about.
    pub user_id: String,
    /// True while the user has a live session in any room.
    pub online: bool,
    /// While offline: the latest `last_seen` among the rooms that still list the user (each
    /// keeps it for its offline retention). `None` while online, or if no room lists the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
}

/// Everyone in a room at one moment, in the room's stable order: online users by when they came
/// online, then offline users by most recent `last_seen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoomSnapshot {
    /// The room id.
    pub room: String,
    /// The sequence number of the last change included. Diffs that follow have larger numbers.
    pub seq: u64,
    /// The users, in order.
    pub users: Vec<UserPresence>,
}

impl RoomSnapshot {
    /// The room `room` at sequence number `seq`, listing `users` in order.
    pub fn new(room: impl Into<String>, seq: u64, users: Vec<UserPresence>) -> Self {
        RoomSnapshot {
            room: room.into(),
            seq,
            users,
        }
    }
}

/// How many are in a room, by state: what a summary subscriber sees instead of everyone.
///
/// ```
/// use presence_core::wire::{RoomCounts, SessionPresence, UserPresence};
/// let users = vec![
///     UserPresence::new("ada", "Ada", vec![SessionPresence::new("t1", "Ada"), SessionPresence::new("t2", "Ada")]),
///     UserPresence::new("bob", "Bob", vec![]),
/// ];
/// let counts = RoomCounts::of(&users);
/// assert_eq!((counts.users, counts.online, counts.sessions), (2, 1, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoomCounts {
    /// Users listed: online and offline (within their retention).
    pub users: u64,
    /// Users online (any live session), away and idle ones included.
    pub online: u64,
    /// Online users whose every session is away (hidden tabs).
    pub away: u64,
    /// Online users who are idle (no active session, at least one idle one) and not away.
    pub idle: u64,
    /// Live sessions (tabs and agents) of the online users.
    pub sessions: u64,
}

impl RoomCounts {
    /// The counts of a room listing `users`.
    pub fn of(users: &[UserPresence]) -> Self {
        let mut counts = RoomCounts {
            users: users.len() as u64,
            ..RoomCounts::default()
        };
        for user in users.iter().filter(|u| u.online) {
            counts.online += 1;
            counts.sessions += user.sessions.len() as u64;
            if user.away {
                counts.away += 1;
            } else if user.idle {
                counts.idle += 1;
            }
        }
        counts
    }
}

/// A room summarized for one subscriber: its counts and its first users in the room's order
/// (what `<FacePile/>` draws), instead of everyone. See [`RoomMessage::Summary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoomSummary {
    /// The room id.
    pub room: String,
    /// The sequence number of the last change counted.
    pub seq: u64,
    /// How many are in the room.
    pub counts: RoomCounts,
    /// The first `k` users in the room's order (`k` as subscribed), when they changed since the
    /// previous summary (always in the first); `None`: as in the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Vec<UserPresence>>,
}

impl RoomSummary {
    /// A summary of `room` at `seq` with `counts` and, if given, its first users.
    pub fn new(
        room: impl Into<String>,
        seq: u64,
        counts: RoomCounts,
        first: Option<Vec<UserPresence>>,
    ) -> Self {
        RoomSummary {
            room: room.into(),
            seq,
            counts,
            first,
        }
    }
}

/// One page of a room's list, in the room's order: what `<FacePile/>`'s "+N" list loads in a
/// room too big to stream whole.
///
/// ```
/// use presence_core::wire::{RoomPage, RoomSnapshot, UserPresence};
/// let users = (0..5).map(|i| UserPresence::new(format!("u{i}"), "U", vec![])).collect();
/// let page = RoomPage::of(&RoomSnapshot::new("r", 9, users), 3, 10);
/// assert_eq!((page.total, page.offset, page.users.len()), (5, 3, 2));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoomPage {
    /// The room id.
    pub room: String,
    /// The sequence number of the list this page was cut from.
    pub seq: u64,
    /// How many users the whole list has.
    pub total: u64,
    /// The index of this page's first user in the whole list.
    pub offset: u64,
    /// At most the page size of users, from `offset` on.
    pub users: Vec<UserPresence>,
}

impl RoomPage {
    /// The page of `snapshot` starting at `offset`, at most `limit` users (lowered to
    /// [`crate::limits::MAX_PAGE_USERS`]).
    pub fn of(snapshot: &RoomSnapshot, offset: u64, limit: u64) -> Self {
        let limit = limit.min(crate::limits::MAX_PAGE_USERS as u64) as usize;
        let start = (offset as usize).min(snapshot.users.len());
        RoomPage {
            room: snapshot.room.clone(),
            seq: snapshot.seq,
            total: snapshot.users.len() as u64,
            offset,
            users: snapshot.users[start..]
                .iter()
                .take(limit)
                .cloned()
                .collect(),
        }
    }
}

/// Why a session left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaveReason {
    /// The client said goodbye (disconnect, tab close).
    Disconnected,
    /// No heartbeat arrived before its deadline.
    Expired,
}

/// A message on a room subscription: first a snapshot, then diffs with increasing `seq`.
///
/// A diff carries what changed: the user's own fields ([`UserHead`], as they are after the
/// change) and the one session that joined or changed, not the user's other sessions. Apply it
/// with [`RoomView::apply`](crate::RoomView::apply), which keeps each user whole. Diffs only
/// make sense in order from a snapshot: a client that sees a gap in `seq` must not apply what
/// follows, but wait for (or ask for) a snapshot; a second `snapshot` replaces its view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoomMessage {
    /// The full room (on subscribe, and again whenever the subscriber fell behind).
    Snapshot(RoomSnapshot),
    /// A session joined. `user.online` is now true (it may have been already); the user's other
    /// sessions, if any, are as they were.
    Joined {
        /// Sequence number of this change.
        seq: u64,
        /// The session that joined.
        session_id: String,
        /// The user after the change, without its sessions.
        user: UserHead,
        /// The session that joined: it goes among the user's sessions by `joined_seq`.
        session: SessionPresence,
    },
    /// A session left: it is no longer among the user's sessions. If it was the user's last,
    /// `user.online` is now false.
    Left {
        /// Sequence number of this change.
        seq: u64,
        /// The session that left.
        session_id: String,
        /// Why it left.
        reason: LeaveReason,
        /// The user after the change, without its sessions.
        user: UserHead,
    },
    /// A session's name, state or status (active / away / idle) changed. Never sent for a heartbeat that changes nothing.
    Updated {
        /// Sequence number of this change.
        seq: u64,
        /// The session that changed.
        session_id: String,
        /// The user after the change, without its sessions.
        user: UserHead,
        /// The session as it is now: it replaces the one with its id.
        session: SessionPresence,
    },
    /// The user is no longer listed (offline past retention, or removed by the server).
    Removed {
        /// Sequence number of this change.
        seq: u64,
        /// The user that is gone.
        user_id: String,
    },
    /// On a summary subscription: the counts, and the first users when they changed. Coalesced:
    /// at most one per window, none while nothing a summary shows changes. A subscriber that
    /// asked for the full list gets one too when the room grows past the server's automatic
    /// limit (and a `snapshot` again when it shrinks well below it).
    Summary(RoomSummary),
    /// On a summary subscription: the subscriber's own user as it is now (`None`: not listed),
    /// first right after the first summary, then whenever it changes.
    Me {
        /// The sequence number of the summary it goes with.
        seq: u64,
        /// The subscriber's user, if listed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<UserPresence>,
    },
}

impl RoomMessage {
    /// The sequence number this message brings the subscriber up to.
    pub fn seq(&self) -> u64 {
        match self {
            RoomMessage::Snapshot(s) => s.seq,
            RoomMessage::Summary(s) => s.seq,
            RoomMessage::Me { seq, .. }
            | RoomMessage::Joined { seq, .. }
            | RoomMessage::Left { seq, .. }
            | RoomMessage::Updated { seq, .. }
            | RoomMessage::Removed { seq, .. } => *seq,
        }
    }
}

/// Arguments of a heartbeat: join a room, or keep a session in it alive.
///
/// ```
/// use presence_core::wire::HeartbeatRequest;
/// let join = HeartbeatRequest::new("design-review", "user-1", "tab-1", "Ada").interval_ms(5_000);
/// assert_eq!(join.interval_ms, Some(5_000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatRequest {
    /// Room id.
    pub room: String,
    /// User id.
    pub user: String,
    /// Session id: a fresh random id per tab.
    pub session: String,
    /// Display name.
    pub name: String,
    /// Heartbeat interval the client intends, in ms (clamped to 1 s … 5 min; default 10 s).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// App-defined JSON state; `None` keeps what the session has.
    #[serde(default)]
    pub state: Option<Value>,
    /// True while the tab is hidden.
    #[serde(default)]
    pub away: bool,
    /// While the tab is idle (visible, no input for the app's `idle_after_ms`): how long it has
    /// had no input, in ms. `None` while active. A session turns idle (one `updated`) when this
    /// first comes, and active again when it stops coming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_for_ms: Option<u64>,
    /// The token from this session's previous heartbeat; `None` on the first.
    #[serde(default)]
    pub session_token: Option<String>,
    /// A person (the default) or an agent. Set by a session's first heartbeat; a later one
    /// claiming the other kind is refused (400), and changes nothing. Over HTTP, with an auth hook, only callers its `agents` rule allows may be agents.
    #[serde(default, skip_serializing_if = "PresenceKind::is_person")]
    pub kind: PresenceKind,
    /// True while the session is invisible ("appear offline"): it lives, keeps its tokens and
    /// may watch the room, but is in no list, count, diff or status anyone is shown. Turning it
    /// on is, to others, a leave (`left`, `disconnected`); turning it off, a join (one
    /// `joined`). Over HTTP only callers the app allows may set it (see
    /// `PresenceAuth::invisible` and `PresenceConfig::allow_invisible`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invisible: bool,
    /// Agents only: how long the session lives after this heartbeat without another, in ms
    /// (clamped to 1 s … 1 h). `None`: as a person's, from the interval. A person's heartbeat
    /// that sets it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl HeartbeatRequest {
    /// A first heartbeat (a join) of session `session` of `user` in `room` as `name`: default
    /// interval, no state, not away, no token. Chain the setters for the rest.
    pub fn new(
        room: impl Into<String>,
        user: impl Into<String>,
        session: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        HeartbeatRequest {
            room: room.into(),
            user: user.into(),
            session: session.into(),
            name: name.into(),
            interval_ms: None,
            state: None,
            away: false,
            idle_for_ms: None,
            session_token: None,
            kind: PresenceKind::Person,
            invisible: false,
            ttl_ms: None,
        }
    }

    /// A first heartbeat of an agent (server-side code) `user` in `room` as `name`, living
    /// `ttl_ms` after each heartbeat (see [`HeartbeatRequest::ttl_ms`]).
    ///
    /// ```
    /// use presence_core::wire::{HeartbeatRequest, PresenceKind};
    /// let join = HeartbeatRequest::agent("design-review", "bot:summary", "agent-1", "Summarizer", 30_000);
    /// assert_eq!(join.kind, PresenceKind::Agent);
    /// ```
    pub fn agent(
        room: impl Into<String>,
        user: impl Into<String>,
        session: impl Into<String>,
        name: impl Into<String>,
        ttl_ms: u64,
    ) -> Self {
        let mut request = HeartbeatRequest::new(room, user, session, name);
        request.kind = PresenceKind::Agent;
        request.ttl_ms = Some(ttl_ms);
        request
    }

    /// Sets [`HeartbeatRequest::interval_ms`].
    pub fn interval_ms(mut self, ms: u64) -> Self {
        self.interval_ms = Some(ms);
        self
    }

    /// Sets [`HeartbeatRequest::state`].
    pub fn state(mut self, state: Value) -> Self {
        self.state = Some(state);
        self
    }

    /// Sets [`HeartbeatRequest::away`].
    pub fn away(mut self, away: bool) -> Self {
        self.away = away;
        self
    }

    /// Sets [`HeartbeatRequest::idle_for_ms`].
    pub fn idle_for_ms(mut self, ms: Option<u64>) -> Self {
        self.idle_for_ms = ms;
        self
    }

    /// Sets [`HeartbeatRequest::invisible`].
    pub fn invisible(mut self, invisible: bool) -> Self {
        self.invisible = invisible;
        self
    }

    /// Sets [`HeartbeatRequest::session_token`].
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatResponse {
    /// The user this session belongs to: the request's `user`, or, on a server with an auth hook,
    /// the identity the server stamped from the request.
    #[serde(default)]
    pub user_id: String,
    /// The capability to update or end this session. Keep it; send it with every heartbeat.
    pub session_token: String,
    /// The capability to list and subscribe to this room.
    pub room_token: String,
    /// True when this heartbeat created the session (first heartbeat, or after the session ended).
    pub joined: bool,
    /// The interval the server applied, in ms.
    pub interval_ms: u64,
    /// When the session expires without another heartbeat, in ms since the Unix epoch.
    pub expires_at: u64,
}

impl HeartbeatResponse {
    /// An answer granting `session_token` and `room_token` to `user_id`; `joined` if the
    /// heartbeat created the session; the applied interval and the expiry (ms since the epoch).
    pub fn new(
        user_id: impl Into<String>,
        session_token: impl Into<String>,
        room_token: impl Into<String>,
        joined: bool,
        interval_ms: u64,
        expires_at: u64,
    ) -> Self {
        HeartbeatResponse {
            user_id: user_id.into(),
            session_token: session_token.into(),
            room_token: room_token.into(),
            joined,
            interval_ms,
            expires_at,
        }
    }
}
