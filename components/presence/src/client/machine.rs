//! The browser client's decisions, with no browser in them: what the next heartbeat sends and
//! when, what an answer, a message, a closed socket or a page event changes, and which status
//! the app sees. The driver (`driver.rs`) feeds it events and carries out the [`Command`]s it
//! returns; tests drive it natively with made-up time, answers and randomness.

// Only the browser builds drive the machine; native builds compile it for its tests.
#![cfg_attr(not(any(feature = "hydrate", feature = "csr")), allow(dead_code))]

use crate::use_presence::{ConnectionStatus, UsePresenceOptions};
use presence_core::room_view::Applied;
use presence_core::wire::{HeartbeatResponse, LeaveReason, RoomMessage};
use presence_core::PresenceError;
use serde_json::Value;

/// After a `pagehide`/`beforeunload`, no heartbeat for this long (ms) unless the page shows again:
/// the page is probably going, and a heartbeat would undo the beacon's leave.
pub(crate) const UNLOAD_PAUSE_MS: f64 = 3_000.0;

/// No retry comes sooner than this (ms), whatever the options say.
pub(crate) const MIN_RETRY_MS: u64 = 50;

/// A visible tab that holds a session retries a failed heartbeat at least this often (ms): the
/// server keeps the session only 4.5 s past its interval (`limits::expiry_after`), so a network
/// blip of a few seconds must be bridged by a retry soon after the network is back.
pub(crate) const LIVE_RETRY_MAX_MS: u64 = 1_000;

/// Something the driver must do in the browser.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Close any open socket and open a new one with these tokens. Its events carry `generation`.
    OpenSocket {
        generation: u64,
        room_token: String,
        session_token: String,
    },
    /// Close the open socket, if any, and forget it.
    CloseSocket,
    /// End this session on the server (a request whose answer does not matter).
    Disconnect(String),
    /// Say this session's page is going, with `navigator.sendBeacon`: the server ends the
    /// session after its leave grace unless a heartbeat comes first (a reload, a remount).
    Going(String),
    /// Call [`Machine::flush_due`] after this many ms.
    FlushStateAfter(u64),
    /// Call [`Machine::socket_retry_due`] with `generation` after `delay_ms`.
    RetrySocketAfter { generation: u64, delay_ms: u64 },
    /// The server says this is who the user is (an auth hook stamped it).
    SetUser(String),
    /// This tab now has another session id.
    SetSession(String),
    /// This tab is now invisible (or not).
    SetInvisible(bool),
    /// Show this error (or none).
    SetError(Option<PresenceError>),
    /// Forget the room's list (the room changed).
    ClearList,
    /// Heartbeat now instead of at the next interval.
    Wake,
    /// This page is going, or its component unmounting: keep this session (in the tab's
    /// `sessionStorage`) for the next page or mount of the same room and user to take on.
    Remember(Resume),
    /// The page lives on (shown again from the back/forward cache): forget what was kept.
    ForgetResume,
}

/// A session a new page (a reload) or a new mount (an in-app navigation) takes on, so that to
/// others nothing happened: its first heartbeat takes the goodbye back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Resume {
    pub room: String,
    /// The user the tab asked to be (not an id an auth hook stamped).
    pub user: String,
    pub session: String,
    pub token: String,
}

/// What the heartbeat loop does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// Send this heartbeat.
    Send(HeartbeatArgs),
    /// Nothing to send for this long (ms), unless woken.
    Wait(u64),
    /// Nothing to send until woken (left, or shut down).
    Idle,
}

/// One heartbeat's fields, and the room generation it was sent for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeartbeatArgs {
    pub generation: u64,
    pub room: String,
    pub user: String,
    pub session: String,
    pub name: String,
    pub interval_ms: u64,
    /// Sent on a join; later changes go through `update`.
    pub state: Option<Value>,
    pub away: bool,
    /// While the visible tab has had no input for `idle_after_ms`: for how long.
    pub idle_for_ms: Option<u64>,
    /// Invisible ("appear offline").
    pub invisible: bool,
    /// The session's token, or on a join the one this tab proposes.
    pub token: String,
}

/// Fresh random ids, injected so tests can predict them.
pub(crate) trait Ids {
    /// A new session id (one per tab, public).
    fn session_id(&mut self) -> String;
    /// A new session token to propose on a join (secret; 64 hex digits in the browser).
    fn token(&mut self) -> String;
}

#[derive(Debug, Clone, PartialEq)]
struct Tokens {
    session: String,
    room: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Heartbeating (or trying to).
    Present,
    /// `leave()` was called: idle until the room changes.
    Left,
    /// The component is gone: nothing happens any more.
    ShutDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    /// No socket.
    Closed,
    /// Opened; its snapshot has not arrived.
    Opening,
    /// Its snapshot arrived: the list is live.
    Synced,
}

/// The browser client's state. Every method is an event; most return the commands it causes.
pub(crate) struct Machine {
    /// The app's options (intervals, throttle, backoff, leaving on unload).
    options: UsePresenceOptions,
    ids: Box<dyn Ids>,
    phase: Phase,
    room: String,
    /// Who the server says this is (an auth hook may have stamped another id).
    user: String,
    /// Who this tab asked to be: the id it started with, or the app's latest.
    asked_user: String,
    name: String,
    session: String,
    /// The last good tokens: a failed heartbeat never clears them.
    tokens: Option<Tokens>,
    /// The session token proposed on a join: if a join times out after the server applied it,
    /// the retry carries the same token and finds its session instead of leaving a ghost.
    proposed_token: String,
    state: Option<Value>,
    flush_armed: bool,
    away: bool,
    /// The latest input (ms since the epoch); `None` until the first heartbeat.
    last_input: Option<f64>,
    /// Whether the latest heartbeat the server took said idle.
    reported_idle: bool,
    /// Invisible, as the app asks.
    invisible: bool,
    /// Whether the server holds this tab's session as invisible (the latest heartbeat it took
    /// said so).
    held_invisible: bool,
    online: bool,
    /// No heartbeats before this time (ms since the epoch), after a `pagehide`.
    paused_until: f64,
    /// Bumped on every room change: answers to older heartbeats are stale.
    room_generation: u64,
    socket: Socket,
    socket_generation: u64,
    socket_failures: u32,
    heartbeat_failures: u32,
    heartbeat_ok: bool,
    ever_connected: bool,
}

impl Machine {
    /// A client about to join `room` as `user`/`name`, with `state` (if any) on its join.
    pub fn new(
        options: UsePresenceOptions,
        mut ids: Box<dyn Ids>,
        room: String,
        user: String,
        name: String,
        state: Option<Value>,
        hidden: bool,
    ) -> Self {
        Machine {
            invisible: options.invisible,
            held_invisible: false,
            options,
            phase: Phase::Present,
            room,
            asked_user: user.clone(),
            user,
            name,
            session: ids.session_id(),
            tokens: None,
            proposed_token: ids.token(),
            ids,
            state: state.filter(|v| !v.is_null()),
            flush_armed: false,
            away: hidden,
            last_input: None,
            reported_idle: false,
            online: true,
            paused_until: 0.0,
            room_generation: 0,
            socket: Socket::Closed,
            socket_generation: 0,
            socket_failures: 0,
            heartbeat_failures: 0,
            heartbeat_ok: false,
            ever_connected: false,
        }
    }

    /// This tab's session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Takes on the session a page that went (a reload) or a component that unmounted left for
    /// this room and user, before the first heartbeat: that heartbeat carries its id and token,
    /// so the server takes its goodbye back (or, after the leave grace, makes it again under
    /// the same id). Anything else is ignored.
    pub fn resume(&mut self, resume: Resume) {
        if resume.room == self.room
            && resume.user == self.asked_user
            && self.tokens.is_none()
            && self.phase == Phase::Present
        {
            self.session = resume.session;
            self.proposed_token = resume.token;
        }
    }

    /// What a next page or mount may take on (see [`Machine::resume`]).
    /// The room token of the last good heartbeat (to load pages of the room's list).
    pub fn room_token(&self) -> Option<&str> {
        self.tokens.as_ref().map(|t| t.room.as_str())
    }

    /// Whether the next heartbeat goes on a new socket that joins as it subscribes
    /// (`subscribe?join=1`, one connection and one round trip for both): when this tab has no
    /// socket open or opening, for the answer to a heartbeat then opens one anyway. The driver
    /// sends it over HTTP instead if that socket fails before answering.
    pub fn joins_on_socket(&self) -> bool {
        self.phase == Phase::Present && self.socket == Socket::Closed
    }

    fn remember(&self, tokens: &Tokens) -> Command {
        Command::Remember(Resume {
            room: self.room.clone(),
            // As the next page will ask: before any stamping (it starts from the same id).
            user: self.asked_user.clone(),
            session: self.session.clone(),
            token: tokens.session.clone(),
        })
    }

    /// What the app sees.
    pub fn status(&self) -> ConnectionStatus {
        if self.phase != Phase::Present || !self.online {
            ConnectionStatus::Offline
        } else if self.heartbeat_ok && self.socket == Socket::Synced {
            ConnectionStatus::Connected
        } else if self.ever_connected {
            ConnectionStatus::Reconnecting
        } else {
            ConnectionStatus::Connecting
        }
    }

    fn note_status(&mut self) {
        if self.status() == ConnectionStatus::Connected {
            self.ever_connected = true;
        }
    }

    fn interval(&self) -> u64 {
        if self.away {
            self.options.hidden_interval_ms
        } else {
            self.options.interval_ms
        }
    }

    /// The shortest wait before a retry, whatever the options say: a zero backoff must not
    /// turn a failing server into a busy loop.
    fn min_backoff(&self) -> u64 {
        self.options.min_backoff_ms.max(MIN_RETRY_MS)
    }

    /// The delay before retry number `failures` (1, 2, …): doubling from the minimum up to the
    /// maximum, times `0.5 + jitter / 2` (`jitter` in `[0, 1)`), which spreads the reconnects
    /// of many tabs after a server restart; never under [`MIN_RETRY_MS`].
    pub fn backoff_ms(&self, failures: u32, jitter: f64) -> u64 {
        let exp = self
            .min_backoff()
            .saturating_mul(1u64 << failures.saturating_sub(1).min(16))
            .min(self.options.max_backoff_ms.max(self.min_backoff()));
        (((exp as f64) * (0.5 + jitter.clamp(0.0, 1.0) * 0.5)) as u64).max(MIN_RETRY_MS)
    }

    /// What the heartbeat loop does at `now` (ms since the epoch).
    pub fn next_heartbeat(&self, now: f64) -> Next {
        if self.phase != Phase::Present {
            return Next::Idle;
        }
        if self.paused_until > now {
            return Next::Wait((self.paused_until - now) as u64 + 1);
        }
        Next::Send(HeartbeatArgs {
            generation: self.room_generation,
            room: self.room.clone(),
            user: self.user.clone(),
            session: self.session.clone(),
            name: self.name.clone(),
            interval_ms: self.interval(),
            state: if self.tokens.is_none() {
                self.state.clone()
            } else {
                None
            },
            away: self.away,
            idle_for_ms: self.idle_for(now),
            invisible: self.invisible,
            token: self
                .tokens
                .as_ref()
                .map_or_else(|| self.proposed_token.clone(), |t| t.session.clone()),
        })
    }

    /// The answer to the heartbeat `args`. Returns how long to wait before the next one (ms),
    /// and the commands.
    pub fn heartbeat_answered(
        &mut self,
        args: &HeartbeatArgs,
        result: Result<HeartbeatResponse, PresenceError>,
        jitter: f64,
    ) -> (u64, Vec<Command>) {
        if self.phase != Phase::Present || self.room_generation != args.generation {
            // Left or moved on while this was in flight: leave no session behind.
            return match result {
                Ok(response) => (0, vec![Command::Disconnect(response.session_token)]),
                Err(_) => (0, Vec::new()),
            };
        }
        let mut commands = Vec::new();
        let wait = match result {
            Ok(response) => {
                let room_token_changed = self
                    .tokens
                    .as_ref()
                    .is_none_or(|t| t.room != response.room_token);
                let needs_socket =
                    response.joined || room_token_changed || self.socket == Socket::Closed;
                let applied_interval = response.interval_ms;
                self.tokens = Some(Tokens {
                    session: response.session_token,
                    room: response.room_token,
                });
                self.heartbeat_failures = 0;
                self.heartbeat_ok = true;
                self.reported_idle = args.idle_for_ms.is_some();
                self.held_invisible = args.invisible;
                if !response.user_id.is_empty() && self.user != response.user_id {
                    // The server stamped another identity (an auth hook): that is who we are.
                    self.user = response.user_id;
                    commands.push(Command::SetUser(self.user.clone()));
                }
                commands.push(Command::SetError(None));
                if needs_socket {
                    commands.push(self.open_socket());
                }
                if response.joined && self.state != args.state {
                    // The session was made with other state than this tab has now: the app set
                    // it while the join was in flight, or the server had lost the session (a
                    // restart) and this rejoin carried none. Send it now.
                    commands.extend(self.arm_flush(0));
                }
                // The server may have clamped the interval: its deadline follows its own.
                match applied_interval {
                    0 => self.interval(),
                    applied => self.interval().min(applied),
                }
            }
            Err(PresenceError::TooManyRequests { retry_after_ms }) => {
                // The server says when: no guessing, no hammering.
                retry_after_ms.max(self.min_backoff())
            }
            Err(error @ PresenceError::Forbidden { .. })
                if args.invisible && self.tokens.is_some() && !self.held_invisible =>
            {
                // A visible session may not turn invisible here: it stays visible (never the
                // other way round: a refused invisible join, or an invisible session whose
                // right was taken back, backs off below rather than show itself).
                self.invisible = false;
                commands.push(Command::SetInvisible(false));
                commands.push(Command::SetError(Some(error)));
                0
            }
            Err(error @ PresenceError::Forbidden { .. })
                if self.tokens.is_some() && !args.invisible =>
            {
                // The session belongs to someone else now (the app's sign-in changed in another
                // tab): start a fresh one as whoever the server says this is. If the room itself
                // is refused, the fresh join fails too, and backs off.
                self.session = self.ids.session_id();
                self.proposed_token = self.ids.token();
                self.tokens = None;
                self.heartbeat_ok = false;
                commands.push(Command::SetSession(self.session.clone()));
                commands.push(Command::SetError(Some(error)));
                0
            }
            Err(PresenceError::SessionTokenMismatch { .. }) => {
                // Another tab holds this session id here: start a fresh session.
                self.session = self.ids.session_id();
                self.proposed_token = self.ids.token();
                self.tokens = None;
                commands.push(Command::SetSession(self.session.clone()));
                0
            }
            Err(error) => {
                self.heartbeat_failures += 1;
                self.heartbeat_ok = false;
                commands.push(Command::SetError(Some(error)));
                let backoff = self.backoff_ms(self.heartbeat_failures, jitter);
                if self.tokens.is_some() && !self.away {
                    backoff.min(LIVE_RETRY_MAX_MS)
                } else {
                    backoff
                }
            }
        };
        self.note_status();
        (wait, commands)
    }

    fn open_socket(&mut self) -> Command {
        let tokens = self.tokens.clone().expect("a socket needs tokens");
        self.socket_generation += 1;
        self.socket = Socket::Opening;
        Command::OpenSocket {
            generation: self.socket_generation,
            room_token: tokens.room,
            session_token: tokens.session,
        }
    }

    fn close_socket(&mut self) -> Option<Command> {
        let was_open = self.socket != Socket::Closed;
        self.socket = Socket::Closed;
        // Events of the closed socket are stale from now on.
        self.socket_generation += 1;
        was_open.then_some(Command::CloseSocket)
    }

    /// True if events of socket `generation` still matter.
    pub fn socket_current(&self, generation: u64) -> bool {
        self.socket_generation == generation && self.phase == Phase::Present
    }

    /// A message arrived on socket `generation`; `apply` puts it into the list.
    pub fn message(
        &mut self,
        generation: u64,
        message: RoomMessage,
        apply: impl FnOnce(RoomMessage) -> Applied,
    ) -> Vec<Command> {
        if !self.socket_current(generation) {
            return Vec::new();
        }
        let snapshot = matches!(message, RoomMessage::Snapshot(_) | RoomMessage::Summary(_));
        let forgotten = self.forgets_me(&message);
        if apply(message) == Applied::NeedsSnapshot {
            // A gap: a new socket starts with a fresh snapshot.
            return match self.tokens {
                Some(_) => vec![self.open_socket()],
                None => Vec::new(),
            };
        }
        let mut commands = Vec::new();
        if snapshot {
            self.socket = Socket::Synced;
            self.socket_failures = 0;
            self.note_status();
        }
        if forgotten {
            // The server no longer has this tab (its store restarted empty, or the session
            // expired while the machine slept): heartbeat now, not at the next interval.
            commands.push(Command::Wake);
        }
        commands
    }

    /// True if `message` shows that the server has lost this tab's live session.
    fn forgets_me(&self, message: &RoomMessage) -> bool {
        // (An invisible tab is in no list: its absence tells nothing.)
        if self.tokens.is_none() || self.invisible || self.held_invisible {
            return false;
        }
        match message {
            RoomMessage::Snapshot(snapshot) => !snapshot
                .users
                .iter()
                .any(|u| u.sessions.iter().any(|s| s.session_id == self.session)),
            RoomMessage::Left {
                session_id,
                reason: LeaveReason::Expired,
                ..
            } => *session_id == self.session,
            // A summary subscription's news of this user: this tab should be among its sessions.
            RoomMessage::Me { user, .. } => !user
                .as_ref()
                .is_some_and(|u| u.sessions.iter().any(|s| s.session_id == self.session)),
            _ => false,
        }
    }

    /// Socket `generation` closed (or could not open).
    pub fn socket_closed(&mut self, generation: u64, jitter: f64) -> Vec<Command> {
        if !self.socket_current(generation) {
            return Vec::new();
        }
        self.socket = Socket::Closed;
        self.socket_failures += 1;
        vec![Command::RetrySocketAfter {
            generation,
            delay_ms: self.backoff_ms(self.socket_failures, jitter),
        }]
    }

    /// The backoff after socket `generation` closed is over.
    pub fn socket_retry_due(&mut self, generation: u64) -> Vec<Command> {
        if !self.socket_current(generation) || self.socket != Socket::Closed {
            return Vec::new();
        }
        // A heartbeat first: after a server restart it rejoins (and opens a socket with fresh
        // tokens); otherwise the socket reopens with the tokens we have.
        let mut commands = vec![Command::Wake];
        if self.tokens.is_some() {
            commands.push(self.open_socket());
        }
        commands
    }

    /// The app set this session's state (`null` clears it).
    pub fn set_state(&mut self, state: Value) -> Vec<Command> {
        self.state = Some(state).filter(|v| !v.is_null());
        if self.tokens.is_some() && self.phase == Phase::Present {
            self.arm_flush(self.options.state_throttle_ms)
        } else {
            // Not joined yet: the join carries it.
            Vec::new()
        }
    }

    /// One flush per throttle window; the latest state wins (trailing edge).
    fn arm_flush(&mut self, delay: u64) -> Vec<Command> {
        if self.flush_armed {
            return Vec::new();
        }
        self.flush_armed = true;
        vec![Command::FlushStateAfter(delay)]
    }

    /// The throttle window is over: the update to send (session token and state), if any.
    pub fn flush_due(&mut self) -> Option<(String, Value)> {
        self.flush_armed = false;
        if self.phase != Phase::Present {
            return None;
        }
        let tokens = self.tokens.as_ref()?;
        Some((
            tokens.session.clone(),
            self.state.clone().unwrap_or(Value::Null),
        ))
    }

    /// An update failed.
    pub fn update_failed(&mut self, error: &PresenceError) -> Vec<Command> {
        if matches!(error, PresenceError::InvalidSessionToken) {
            // The session is gone: the next heartbeat rejoins, carrying the state.
            vec![Command::Wake]
        } else {
            Vec::new()
        }
    }

    /// The app turned invisibility on or off: the next heartbeat, now, says so.
    pub fn set_invisible(&mut self, invisible: bool) -> Vec<Command> {
        if self.invisible == invisible {
            return Vec::new();
        }
        self.invisible = invisible;
        vec![Command::SetInvisible(invisible), Command::Wake]
    }

    /// The app changed the display name: the next heartbeat, now, reports it.
    pub fn set_name(&mut self, name: String) -> Vec<Command> {
        if self.name == name {
            return Vec::new();
        }
        self.name = name;
        vec![Command::Wake]
    }

    /// The app changed the room (or rejoins the one it left): leave the old, join the new.
    pub fn set_room(&mut self, room: String) -> Vec<Command> {
        if self.phase == Phase::ShutDown || (self.room == room && self.phase == Phase::Present) {
            return Vec::new();
        }
        self.room = room;
        self.start_over()
    }

    /// The app's `user_id` changed: leave as the old user, join as the new one.
    pub fn set_user(&mut self, user: String) -> Vec<Command> {
        // (Compared with what this tab asked for, not with an id the server stamped: the same
        // app id again is no change.)
        if self.phase == Phase::ShutDown || self.asked_user == user {
            return Vec::new();
        }
        self.user = user.clone();
        self.asked_user = user.clone();
        let mut commands = vec![Command::SetUser(user)];
        if self.phase == Phase::Present {
            commands.extend(self.start_over());
        }
        commands
    }

    /// Ends this tab's session (if any) and joins afresh: a new room or user.
    fn start_over(&mut self) -> Vec<Command> {
        self.room_generation += 1;
        self.proposed_token = self.ids.token();
        self.phase = Phase::Present;
        self.heartbeat_ok = false;
        self.heartbeat_failures = 0;
        self.ever_connected = false;
        let mut commands: Vec<Command> = self.close_socket().into_iter().collect();
        if let Some(tokens) = self.tokens.take() {
            commands.push(Command::Disconnect(tokens.session));
        }
        commands.push(Command::ClearList);
        commands.push(Command::Wake);
        commands
    }

    /// The app called `leave()`.
    pub fn leave(&mut self) -> Vec<Command> {
        if self.phase == Phase::ShutDown {
            return Vec::new();
        }
        self.phase = Phase::Left;
        let mut commands: Vec<Command> = self.close_socket().into_iter().collect();
        if let Some(tokens) = self.tokens.take() {
            commands.push(Command::Disconnect(tokens.session));
        }
        commands
    }

    /// The component is gone. Its session goes after the server's leave grace, not at once:
    /// an in-app navigation to a page that shows the same room is not a leave.
    pub fn shut_down(&mut self) -> Vec<Command> {
        if self.phase == Phase::ShutDown {
            return Vec::new();
        }
        self.phase = Phase::ShutDown;
        let mut commands: Vec<Command> = self.close_socket().into_iter().collect();
        if let Some(tokens) = self.tokens.take() {
            commands.push(self.remember(&tokens));
            commands.push(Command::Going(tokens.session));
        }
        commands
    }

    /// The page is going (`pagehide`, `beforeunload`) at `now`: say so with a beacon (the server
    /// ends the session after its leave grace unless the page comes back: a reload, the
    /// back/forward cache), and send no heartbeat for a moment in case the page lives on.
    ///
    /// `keep`: the page is really going (`pagehide`), so its session is kept for the tab's next
    /// page; not on `beforeunload`, which a download or a `mailto:` link fires while the page
    /// lives on.
    pub fn unloading(&mut self, now: f64, keep: bool) -> Vec<Command> {
        if !self.options.leave_on_unload || self.phase != Phase::Present {
            return Vec::new();
        }
        self.paused_until = now + UNLOAD_PAUSE_MS;
        // A heartbeat still in flight is stale: if the page lives on and its answer comes back
        // (a session the server made again after the beacon), that session is ended.
        self.room_generation += 1;
        let mut commands: Vec<Command> = self.close_socket().into_iter().collect();
        // The tokens stay: if the page lives on, its next heartbeat takes the goodbye back (or,
        // after the grace, makes the session again under the same token).
        if let Some(tokens) = &self.tokens {
            if keep {
                commands.push(self.remember(tokens));
            }
            commands.push(Command::Going(tokens.session.clone()));
        }
        commands
    }

    /// The page is shown again from the back/forward cache: rejoin now (it keeps its session).
    pub fn shown_again(&mut self) -> Vec<Command> {
        self.paused_until = 0.0;
        vec![Command::ForgetResume, Command::Wake]
    }

    /// How long the visible tab has had no input at `now`, once that is `idle_after_ms` or more.
    fn idle_for(&self, now: f64) -> Option<u64> {
        let after = self.options.idle_after_ms;
        let since = self.last_input.unwrap_or(now);
        let quiet = (now - since).max(0.0) as u64;
        (after > 0 && !self.away && quiet >= after).then_some(quiet)
    }

    /// Input (pointer, keys, wheel, touch) at `now`. An idle tab is active again at once.
    pub fn input(&mut self, now: f64) -> Vec<Command> {
        self.last_input = Some(now);
        if self.reported_idle && self.phase == Phase::Present {
            self.reported_idle = false;
            return vec![Command::Wake];
        }
        Vec::new()
    }

    /// The tab was hidden or shown. Hidden: one heartbeat says "away" and stretches the
    /// deadline. Shown: "active", at once.
    pub fn visibility(&mut self, hidden: bool) -> Vec<Command> {
        self.away = hidden;
        if !hidden {
            self.paused_until = 0.0;
        }
        vec![Command::Wake]
    }

    /// The browser reports the network up or down.
    pub fn network(&mut self, online: bool) -> Vec<Command> {
        self.online = online;
        if online {
            vec![Command::Wake]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
