//! `use_presence`: join a room from a component and watch who else is there.

use crate::store::{PresenceStore, SessionEntry, UserEntry};
use leptos::prelude::*;
use presence_core::wire::{RoomCounts, RoomMessage, RoomPage, SessionPresence, UserPresence};
use presence_core::PresenceError;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// The state of the connection to the presence server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Joining for the first time (and during SSR).
    Connecting,
    /// Joined, and the live list is streaming.
    Connected,
    /// A heartbeat failed or the stream dropped; retrying with backoff. The last list is kept.
    Reconnecting,
    /// Left the room, or the browser reports no network.
    Offline,
}

impl ConnectionStatus {
    /// `connecting`, `connected`, `reconnecting` or `offline`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Reconnecting => "reconnecting",
            ConnectionStatus::Offline => "offline",
        }
    }
}

/// Which list of the room the hook keeps (see [`UsePresenceOptions::list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ListMode {
    /// Everyone while the room is small, a summary (as [`ListMode::Summary`]) while it lists
    /// more than the server's `summary_above` users (200 by default), and everyone again below
    /// half of that: an app written for small rooms survives a big one. The default.
    #[default]
    Auto,
    /// Everyone, always: every change in the room reaches this tab (it costs the server and this
    /// tab in proportion to the room).
    Full,
    /// A summary, always: [`UsePresenceReturn::counts`], the room's first
    /// [`UsePresenceOptions::summary_size`] users and this user; `users` lists just those.
    /// Changes beyond them cost this tab nothing; counts arrive at most every 100 ms.
    Summary,
}

impl ListMode {
    /// `auto`, `full` or `summary`: the subscription's `view` parameter.
    pub fn as_str(&self) -> &'static str {
        match self {
            ListMode::Auto => "auto",
            ListMode::Full => "full",
            ListMode::Summary => "summary",
        }
    }
}

/// Options of [`use_presence_with_options`]. Every field has a default; chain the setters.
///
/// ```
/// use leptos_presence::UsePresenceOptions;
/// let options = UsePresenceOptions::default()
///     .interval_ms(5_000)
///     .server_url("https://presence.example.com");
/// assert_eq!(options.interval_ms, 5_000);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct UsePresenceOptions {
    /// The user id (a signal: when it changes, the tab leaves as the old user and joins as the
    /// new one). Default: a random id kept in `localStorage` (key `leptos-presence:user`), so
    /// this browser's tabs are one user.
    pub user_id: Option<Signal<String>>,
    /// State to report on join. Default: none.
    pub initial_state: Option<Value>,
    /// Heartbeat interval while the tab is visible, in ms. Default 10,000. The server ends a
    /// session its interval plus min(1.5 intervals, 4.5 s) after its last heartbeat: 14.5 s
    /// at the default.
    pub interval_ms: u64,
    /// Heartbeat interval while the tab is hidden, in ms. Default 60,000: browsers run hidden
    /// tabs' timers about once a minute, and 2.5 × 60 s outlasts that, so a hidden tab shows as
    /// away, never as gone.
    pub hidden_interval_ms: u64,
    /// `set_state` sends at most one update per this many ms (trailing edge: the latest state
    /// wins). Default 100.
    pub state_throttle_ms: u64,
    /// First retry delay after a failure, in ms; doubles up to `max_backoff_ms`, with jitter.
    /// Default 250.
    pub min_backoff_ms: u64,
    /// Longest retry delay, in ms. Default 10,000.
    pub max_backoff_ms: u64,
    /// On `pagehide`/`beforeunload`, say the page is going (a `sendBeacon` to
    /// `/api/presence/going`): the session ends after the server's leave grace
    /// (`PRESENCE_LEAVE_GRACE_MS`, 1.5 s) unless the page heartbeats again, so a reload is not a
    /// leave. `false`: no beacon (a closed socket's grace, or expiry, ends it). Default true.
    pub leave_on_unload: bool,
    /// A visible tab with no input (pointer, keys, wheel, touch) for this long, in ms, shows as
    /// idle: dimmed, "idle for 6 min". Noticed at its next heartbeat (no extra ones); input makes
    /// it active again at once. 0 turns idle off. Default 300,000 (5 min).
    pub idle_after_ms: u64,
    /// The presence server's URL (scheme, host and port, e.g. `https://presence.example.com`)
    /// when it is not this page's origin: a client-side-rendered app (feature `csr`) served
    /// from elsewhere. Heartbeats, updates, the leave beacon and the WebSocket (`wss://` for
    /// `https://`) all go there, with the page's cookies; the server must list this page's
    /// origin in `allowed_origins` (`PRESENCE_ALLOWED_ORIGINS`). Default: none, this page's
    /// origin.
    pub server_url: Option<String>,
    /// Join invisible ("appear offline"): present, watching the room, listed to nobody (this
    /// tab's own list included); `set_invisible` changes it later. The server must allow it
    /// (an auth hook's `invisible` rule, or `PRESENCE_ALLOW_INVISIBLE=1` without a hook);
    /// refused, a join backs off and retries, and a visible tab stays visible (`error` says
    /// why). Default false.
    pub invisible: bool,
    /// Which list to keep: everyone, a summary, or automatic (see [`ListMode`]). Default
    /// [`ListMode::Auto`].
    pub list: ListMode,
    /// How many of the room's first users a summary lists (1 … 50). `<FacePile/>` shows as
    /// many faces as it is given, so keep this at least its `max_visible`. Default 5.
    pub summary_size: usize,
}

impl Default for UsePresenceOptions {
    fn default() -> Self {
        UsePresenceOptions {
            user_id: None,
            initial_state: None,
            interval_ms: 10_000,
            hidden_interval_ms: 60_000,
            state_throttle_ms: 100,
            min_backoff_ms: 250,
            max_backoff_ms: 10_000,
            leave_on_unload: true,
            idle_after_ms: 300_000,
            server_url: None,
            invisible: false,
            list: ListMode::Auto,
            summary_size: presence_core::limits::DEFAULT_SUMMARY_USERS,
        }
    }
}

impl UsePresenceOptions {
    /// Sets [`UsePresenceOptions::user_id`].
    pub fn user_id(mut self, user_id: impl Into<Signal<String>>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
    /// Sets [`UsePresenceOptions::initial_state`] from any serializable value.
    pub fn initial_state<T: Serialize>(mut self, state: &T) -> Self {
        self.initial_state = serde_json::to_value(state).ok();
        self
    }
    /// Sets [`UsePresenceOptions::interval_ms`].
    pub fn interval_ms(mut self, ms: u64) -> Self {
        self.interval_ms = ms;
        self
    }
    /// Sets [`UsePresenceOptions::hidden_interval_ms`].
    pub fn hidden_interval_ms(mut self, ms: u64) -> Self {
        self.hidden_interval_ms = ms;
        self
    }
    /// Sets [`UsePresenceOptions::state_throttle_ms`].
    pub fn state_throttle_ms(mut self, ms: u64) -> Self {
        self.state_throttle_ms = ms;
        self
    }
    /// Sets [`UsePresenceOptions::min_backoff_ms`] and [`UsePresenceOptions::max_backoff_ms`].
    pub fn backoff_ms(mut self, min: u64, max: u64) -> Self {
        self.min_backoff_ms = min;
        self.max_backoff_ms = max.max(min);
        self
    }
    /// Sets [`UsePresenceOptions::idle_after_ms`] (0: never idle).
    pub fn idle_after_ms(mut self, ms: u64) -> Self {
        self.idle_after_ms = ms;
        self
    }

    /// Sets [`UsePresenceOptions::invisible`].
    pub fn invisible(mut self, invisible: bool) -> Self {
        self.invisible = invisible;
        self
    }

    /// Sets [`UsePresenceOptions::list`].
    pub fn list(mut self, list: ListMode) -> Self {
        self.list = list;
        self
    }

    /// Sets [`UsePresenceOptions::summary_size`].
    pub fn summary_size(mut self, users: usize) -> Self {
        self.summary_size = users;
        self
    }

    /// Sets [`UsePresenceOptions::leave_on_unload`].
    pub fn leave_on_unload(mut self, leave: bool) -> Self {
        self.leave_on_unload = leave;
        self
    }
    /// Sets [`UsePresenceOptions::server_url`] (a trailing `/` is ignored).
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        let url: String = url.into();
        self.server_url = Some(url.trim_end_matches('/').to_string());
        self
    }
}

/// What [`use_presence`] returns. Cheap to clone.
#[derive(Clone)]
#[non_exhaustive]
pub struct UsePresenceReturn {
    /// One entry per user (online first by join order, then offline by last seen), this user
    /// included. The list changes only when someone joins, leaves the list or moves; a user's
    /// changes arrive through their entry's own `presence` signal.
    pub users: Signal<Vec<UserEntry>>,
    /// Every live session except this tab's own (other users' and this user's other tabs), in the
    /// room's order. Like `users`, the list changes only when sessions come, go or move; a
    /// session's changes arrive through its entry's own signal, so a `<For/>` keyed by
    /// `session_id` keeps each row and updates it in place.
    pub others: Signal<Vec<SessionEntry>>,
    /// This user's entry (all its tabs), once joined.
    pub me: Signal<Option<UserPresence>>,
    /// How many are in the room (users listed, online, away, idle; live sessions), whether the
    /// list is everyone or a summary.
    pub counts: Signal<RoomCounts>,
    /// True while `users` is a summary (the room's first users and this one, see [`ListMode`])
    /// rather than everyone: `counts` then says how many more there are.
    pub summarized: Signal<bool>,
    /// This tab's own session, once joined.
    pub session: Signal<Option<SessionPresence>>,
    /// Why the last heartbeat failed (`None` once one succeeds): an invalid room id, a full room,
    /// the server unreachable…
    pub error: Signal<Option<PresenceError>>,
    /// This browser's user id (`None` during SSR and until hydrated).
    pub user_id: Signal<Option<String>>,
    /// This tab's session id (`None` during SSR and until hydrated).
    pub session_id: Signal<Option<String>>,
    /// The connection state.
    pub status: Signal<ConnectionStatus>,
    /// True while this tab is invisible, or asking to be (see [`UsePresenceReturn::set_invisible`]).
    pub invisible: Signal<bool>,
    /// Milliseconds since the Unix epoch at which the initial list was taken: a starting "now"
    /// for "last seen" labels that renders the same on the server and in the browser.
    pub rendered_at_ms: u64,
    pub(crate) control: Arc<dyn PresenceControl>,
}

impl UsePresenceReturn {
    /// Replaces this session's app-defined state with any serializable value. Throttled
    /// (trailing edge), so it can be called on every keystroke.
    pub fn set_state<T: Serialize>(&self, state: &T) {
        if let Ok(value) = serde_json::to_value(state) {
            self.control.set_state(value);
        }
    }

    /// Leaves the room now (the hook stays stopped until the page reloads or the room changes).
    pub fn leave(&self) {
        self.control.leave();
    }

    /// Turns invisibility ("appear offline") on or off, at once: to others, turning it on is a
    /// leave (offline, last seen now) and turning it off one join. While invisible this tab
    /// stays present, keeps its session and watches the room, but nobody's list shows it (its
    /// own neither: `me` and `session` are `None`). The server must allow it (see
    /// [`UsePresenceOptions::invisible`]); if it refuses, `invisible` goes back to false and
    /// `error` says why.
    pub fn set_invisible(&self, invisible: bool) {
        self.control.set_invisible(invisible);
    }

    /// Loads one page of the room's whole list (`limit` users from index `offset`, at most 200),
    /// in the room's order, with the list's total: for showing everyone on demand while the
    /// live list is a summary (what `<FacePile/>`'s "+N" list does). Fails with `Unavailable`
    /// before the tab has joined, and on the server.
    pub async fn list_page(&self, offset: u64, limit: u64) -> Result<RoomPage, PresenceError> {
        let Some((base, room_token)) = self.control.page_source() else {
            return Err(PresenceError::Unavailable {
                message: "not joined yet".into(),
            });
        };
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        {
            crate::client::http::list_page(&base, &room_token, offset, limit)
                .await
                .map_err(|e| e.0)
        }
        #[cfg(not(any(feature = "hydrate", feature = "csr")))]
        {
            let _ = (base, room_token, offset, limit);
            Err(PresenceError::Unavailable {
                message: "pages load in the browser".into(),
            })
        }
    }

    /// True if `user_id` is this browser's user.
    pub fn is_self(&self, user_id: &str) -> bool {
        self.user_id.with(|me| me.as_deref() == Some(user_id))
    }
}

/// What the hook does that differs between the browser and the server.
pub(crate) trait PresenceControl: Send + Sync {
    fn set_state(&self, state: Value);
    fn leave(&self);
    fn set_invisible(&self, invisible: bool);
    /// Where to load pages of the room's list: the server URL and the room token, once joined.
    fn page_source(&self) -> Option<(String, String)>;
}

/// On the server (and before hydration) there is nothing to control.
struct Inert;

impl PresenceControl for Inert {
    fn set_state(&self, _: Value) {}
    fn leave(&self) {}
    fn set_invisible(&self, _: bool) {}
    fn page_source(&self) -> Option<(String, String)> {
        None
    }
}

/// Joins `room` as `name` with default options. See [`use_presence_with_options`].
pub fn use_presence(
    room: impl Into<Signal<String>>,
    name: impl Into<Signal<String>>,
) -> UsePresenceReturn {
    use_presence_with_options(room, name, UsePresenceOptions::default())
}

/// Joins `room` as `name` and keeps this tab present there while the calling component lives.
///
/// In the browser it heartbeats every `interval_ms` (one request in flight at a time), marks the
/// session away while the tab is hidden, streams the room's changes over a WebSocket, retries
/// failures with backoff and jitter (keeping the last good tokens), reports `idle` after
/// `idle_after_ms` without input, and says it is going with `navigator.sendBeacon` on
/// `pagehide`/`beforeunload` and on unmount (the session ends after the server's leave grace
/// unless a heartbeat takes it back: a reload or a remount is not a leave). `leave()` and a room
/// change disconnect at once; changing `name` is reported on the next heartbeat.
///
/// During SSR nothing starts: the returned signals hold the room's current list (so the first
/// paint is not empty), handed to the browser for hydration. Reading it never waits on I/O: with
/// the Redis store it is the room as this server last relayed it to its subscribers, or nothing
/// if nobody here watches the room (the browser fills the list in once it joins).
pub fn use_presence_with_options(
    room: impl Into<Signal<String>>,
    name: impl Into<Signal<String>>,
    options: UsePresenceOptions,
) -> UsePresenceReturn {
    let room = room.into();
    let name = name.into();
    let (list, summary_size) = (options.list, options.summary_size);
    let initial = SharedValue::new(move || initial_list(&room.get_untracked(), list, summary_size))
        .into_inner();
    let rendered_at_ms = initial.as_ref().map_or(0, |i| i.rendered_at_ms);
    let store = PresenceStore::new(None);
    if let Some(initial) = initial {
        store.apply(initial.list);
    }
    let entries = store.entries();
    let status = ArcRwSignal::new(ConnectionStatus::Connecting);
    let user_id = ArcRwSignal::new(None::<String>);
    let session_id = ArcRwSignal::new(None::<String>);
    let error = ArcRwSignal::new(None::<PresenceError>);
    let invisible = ArcRwSignal::new(options.invisible);

    let users: Signal<Vec<UserEntry>> = {
        let entries = entries.clone();
        Signal::derive(move || entries.get())
    };
    let others: Signal<Vec<SessionEntry>> = {
        let sessions = store.sessions();
        let session_id = session_id.clone();
        Memo::new(move |_| {
            let mine = session_id.get();
            sessions.with(|all| {
                all.iter()
                    .filter(|s| Some(&*s.session_id) != mine.as_deref())
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
        .into()
    };
    let me: Signal<Option<UserPresence>> = {
        let entries = entries.clone();
        let user_id = user_id.clone();
        Memo::new(move |_| {
            let me = user_id.get()?;
            entries
                .get()
                .iter()
                .find(|e| *e.user_id == *me)
                .map(|e| e.presence.get())
        })
        .into()
    };

    let session: Signal<Option<SessionPresence>> = {
        let session_id = session_id.clone();
        Memo::new(move |_| {
            let mine = session_id.get()?;
            me.get()?
                .sessions
                .into_iter()
                .find(|s| s.session_id == mine)
        })
        .into()
    };

    let counts: Signal<RoomCounts> = {
        let counts = store.counts();
        Signal::derive(move || counts.get())
    };
    let summarized: Signal<bool> = {
        let summarized = store.summarized();
        Signal::derive(move || summarized.get())
    };

    #[cfg(any(feature = "hydrate", feature = "csr"))]
    let control: Arc<dyn PresenceControl> = crate::client::start(crate::client::Setup {
        room,
        name,
        options,
        store,
        status: status.clone(),
        user_id: user_id.clone(),
        session_id: session_id.clone(),
        error: error.clone(),
        invisible: invisible.clone(),
    });
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    let control: Arc<dyn PresenceControl> = {
        let _ = (options, store, name, &error);
        Arc::new(Inert)
    };
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    let _ = Inert;

    UsePresenceReturn {
        users,
        others,
        me,
        counts,
        summarized,
        session,
        error: Signal::derive(move || error.get()),
        user_id: Signal::derive(move || user_id.get()),
        session_id: Signal::derive(move || session_id.get()),
        status: Signal::derive(move || status.get()),
        invisible: Signal::derive(move || invisible.get()),
        rendered_at_ms,
        control,
    }
}

/// The list handed from SSR to hydration: the room's snapshot, or, for a room past the
/// automatic limit, its summary (the page does not carry everyone).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct InitialList {
    list: RoomMessage,
    rendered_at_ms: u64,
}

#[cfg(feature = "ssr")]
fn initial_list(room: &str, mode: ListMode, summary_size: usize) -> Option<InitialList> {
    let (snapshot, rendered_at_ms, summary_above) = crate::ssr::first_paint(room)?;
    let summarize = match mode {
        ListMode::Full => false,
        ListMode::Summary => true,
        _ => snapshot.users.len() > summary_above,
    };
    let list = if summarize {
        let k = summary_size.clamp(1, presence_core::limits::MAX_SUMMARY_USERS);
        let first = snapshot.users.iter().take(k).cloned().collect();
        let counts = RoomCounts::of(&snapshot.users);
        RoomMessage::Summary(presence_core::wire::RoomSummary::new(
            snapshot.room,
            snapshot.seq,
            counts,
            Some(first),
        ))
    } else {
        RoomMessage::Snapshot(snapshot)
    };
    Some(InitialList {
        list,
        rendered_at_ms,
    })
}

#[cfg(not(feature = "ssr"))]
fn initial_list(_room: &str, _mode: ListMode, _summary_size: usize) -> Option<InitialList> {
    None
}

/// A return value over a store, for rendering tests.
#[cfg(test)]
pub(crate) fn test_return(store: PresenceStore, rendered_at_ms: u64) -> UsePresenceReturn {
    let entries = store.entries();
    UsePresenceReturn {
        users: Signal::derive(move || entries.get()),
        others: Signal::derive(Vec::new),
        me: Signal::derive(|| None),
        counts: {
            let counts = store.counts();
            Signal::derive(move || counts.get())
        },
        summarized: {
            let summarized = store.summarized();
            Signal::derive(move || summarized.get())
        },
        session: Signal::derive(|| None),
        error: Signal::derive(|| None),
        user_id: Signal::derive(|| None),
        session_id: Signal::derive(|| None),
        status: Signal::derive(|| ConnectionStatus::Connecting),
        invisible: Signal::derive(|| false),
        rendered_at_ms,
        control: Arc::new(Inert),
    }
}
