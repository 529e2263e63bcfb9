//! The room as signals: list signals that change only when membership or order changes, and one
//! signal per user and per session that changes only when that user or session does. Views keyed
//! by user id or session id therefore keep their DOM nodes while others come, go and change, and
//! update those nodes in place.

use leptos::prelude::*;
use presence_core::room_view::Applied;
use presence_core::wire::{RoomCounts, RoomMessage, RoomSnapshot, SessionPresence, UserPresence};
use presence_core::RoomView;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One user of the room, as a stable handle: `user_id` never changes, `presence` is a signal that
/// updates in place when the user changes.
///
/// Key a `<For/>` by `user_id` and read the user inside reactive closures:
/// `{move || entry.get().name}`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UserEntry {
    /// The user id (use it as the key of a `<For/>`).
    pub user_id: Arc<str>,
    /// The user's current presence.
    pub presence: ArcReadSignal<UserPresence>,
}

impl UserEntry {
    /// An entry that does not follow the room: a user as loaded once (a page of a big room).
    pub(crate) fn fixed(user: UserPresence) -> Self {
        UserEntry {
            user_id: Arc::from(user.user_id.as_str()),
            presence: ArcRwSignal::new(user).read_only(),
        }
    }

    /// The user now (tracked: a reactive closure that calls it reruns when the user changes).
    pub fn get(&self) -> UserPresence {
        self.presence.get()
    }

    /// Reads the user now without cloning it (tracked).
    pub fn with<R>(&self, f: impl FnOnce(&UserPresence) -> R) -> R {
        self.presence.with(f)
    }
}

impl PartialEq for UserEntry {
    fn eq(&self, other: &Self) -> bool {
        self.user_id == other.user_id && self.presence == other.presence
    }
}

/// One live session (tab) in the room and whose it is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OtherSession {
    /// Whose session it is.
    pub user_id: String,
    /// The user's display name.
    pub user_name: String,
    /// The session.
    pub session: SessionPresence,
}

/// One live session of the room, as a stable handle: `session_id` and `user_id` never change,
/// `presence` is a signal that updates in place when the session (or its user's name) changes.
///
/// ```
/// # use leptos::prelude::*;
/// # use leptos_presence::UsePresenceReturn;
/// #[derive(serde::Deserialize)]
/// struct Cursor { section: String }
///
/// #[component]
/// fn Others(presence: UsePresenceReturn) -> impl IntoView {
///     let others = presence.others;
///     view! {
///         // The row stays when its session changes; the closures inside update it in place.
///         <For each=move || others.get() key=|s| s.session_id.clone() let:s>
///             <li>
///                 {let s = s.clone(); move || s.name()}
///                 " is in "
///                 {move || s.state_as::<Cursor>().map(|c| c.section)}
///             </li>
///         </For>
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionEntry {
    /// The session id (use it as the key of a `<For/>`).
    pub session_id: Arc<str>,
    /// Whose session it is.
    pub user_id: Arc<str>,
    /// The session now.
    pub presence: ArcReadSignal<OtherSession>,
}

impl SessionEntry {
    /// The session now (tracked).
    pub fn get(&self) -> OtherSession {
        self.presence.get()
    }

    /// Reads the session now without cloning it (tracked).
    pub fn with<R>(&self, f: impl FnOnce(&OtherSession) -> R) -> R {
        self.presence.with(f)
    }

    /// The name this session reported (tracked).
    pub fn name(&self) -> String {
        self.with(|s| s.session.name.clone())
    }

    /// The session's state as the app's own type (tracked); `None` if absent or of another shape.
    pub fn state_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.with(|s| s.session.state_as())
    }

    /// True while the session's tab is hidden (tracked).
    pub fn is_away(&self) -> bool {
        self.with(|s| s.session.status == presence_core::wire::SessionStatus::Away)
    }

    /// True while the session's tab is visible but has had no input for a while (tracked).
    pub fn is_idle(&self) -> bool {
        self.with(|s| s.session.status == presence_core::wire::SessionStatus::Idle)
    }

    /// True if the session is an agent's (server-side code), not a person's tab.
    pub fn is_agent(&self) -> bool {
        self.with(|s| s.session.kind == presence_core::wire::PresenceKind::Agent)
    }
}

impl PartialEq for SessionEntry {
    fn eq(&self, other: &Self) -> bool {
        self.session_id == other.session_id && self.presence == other.presence
    }
}

/// Each listed user's writable signal and the read-only entry handed out for it.
type Writers = HashMap<Arc<str>, (ArcRwSignal<UserPresence>, UserEntry)>;
/// The same per live session.
type SessionWriters = HashMap<Arc<str>, (ArcRwSignal<OtherSession>, SessionEntry)>;

/// What a summary subscription has said: the first users and this user's own entry (the
/// counts are in their own signal).
#[derive(Debug, Default)]
struct Summarized {
    first: Vec<UserPresence>,
    me: Option<UserPresence>,
}

impl Summarized {
    /// The users to show: the first ones, with this user's newer entry in its place, or after
    /// them if it is not among them.
    fn users(&self) -> Vec<UserPresence> {
        let mut users = self.first.clone();
        if let Some(me) = &self.me {
            match users.iter_mut().find(|u| u.user_id == me.user_id) {
                Some(listed) => *listed = me.clone(),
                None => users.push(me.clone()),
            }
        }
        users
    }
}

/// Applies room messages and reconciles the result into signals.
#[derive(Clone)]
pub(crate) struct PresenceStore {
    view: Arc<Mutex<RoomView>>,
    /// `Some` while the subscription sends summaries instead of the full list.
    summary: Arc<Mutex<Option<Summarized>>>,
    counts: ArcRwSignal<RoomCounts>,
    /// Whether `summary` is `Some`, as a signal.
    summarized: ArcRwSignal<bool>,
    writers: Arc<Mutex<Writers>>,
    session_writers: Arc<Mutex<SessionWriters>>,
    entries: ArcRwSignal<Vec<UserEntry>>,
    sessions: ArcRwSignal<Vec<SessionEntry>>,
}

impl PresenceStore {
    pub fn new(initial: Option<RoomSnapshot>) -> Self {
        let store = PresenceStore {
            view: Arc::default(),
            summary: Arc::default(),
            counts: ArcRwSignal::new(RoomCounts::default()),
            summarized: ArcRwSignal::new(false),
            writers: Arc::default(),
            session_writers: Arc::default(),
            entries: ArcRwSignal::new(Vec::new()),
            sessions: ArcRwSignal::new(Vec::new()),
        };
        if let Some(snapshot) = initial {
            store.apply(RoomMessage::Snapshot(snapshot));
        }
        store
    }

    pub fn entries(&self) -> ArcReadSignal<Vec<UserEntry>> {
        self.entries.read_only()
    }

    /// Every live session, in room order (users' order, then each user's sessions by join).
    pub fn sessions(&self) -> ArcReadSignal<Vec<SessionEntry>> {
        self.sessions.read_only()
    }

    /// How many are in the room (from the summary, or counted from the full list).
    pub fn counts(&self) -> ArcReadSignal<RoomCounts> {
        self.counts.read_only()
    }

    /// True while the list is a summary (the first users and this one), not everyone.
    pub fn summarized(&self) -> ArcReadSignal<bool> {
        self.summarized.read_only()
    }

    /// Applies one message; on `NeedsSnapshot` the caller must resubscribe.
    pub fn apply(&self, message: RoomMessage) -> Applied {
        match message {
            RoomMessage::Summary(summary) => {
                let mut state = lock(&self.summary);
                let state = state.get_or_insert_with(Summarized::default);
                if let Some(first) = summary.first {
                    state.first = first;
                }
                if self.counts.with_untracked(|c| *c != summary.counts) {
                    self.counts.set(summary.counts);
                }
            }
            RoomMessage::Me { user, .. } => match &mut *lock(&self.summary) {
                Some(state) => state.me = user,
                None => return Applied::Stale,
            },
            message => {
                let snapshot = matches!(message, RoomMessage::Snapshot(_));
                if !snapshot && lock(&self.summary).is_some() {
                    // A diff after the switch to summaries: already counted in them.
                    return Applied::Stale;
                }
                let applied = lock(&self.view).apply(message);
                if applied != Applied::Changed {
                    return applied;
                }
                if snapshot {
                    *lock(&self.summary) = None;
                }
                let counts = RoomCounts::of(lock(&self.view).users());
                if self.counts.with_untracked(|c| *c != counts) {
                    self.counts.set(counts);
                }
            }
        }
        self.reconcile();
        Applied::Changed
    }

    /// Forgets everything (the room changed).
    #[cfg_attr(not(any(feature = "hydrate", feature = "csr")), allow(dead_code))]
    pub fn clear(&self) {
        *lock(&self.view) = RoomView::default();
        *lock(&self.summary) = None;
        self.counts.set(RoomCounts::default());
        self.reconcile();
    }

    fn reconcile(&self) {
        let summarized = lock(&self.summary).as_ref().map(Summarized::users);
        if self.summarized.get_untracked() != summarized.is_some() {
            self.summarized.set(summarized.is_some());
        }
        let view = lock(&self.view);
        let users = summarized.as_deref().unwrap_or(view.users());
        let next = reconcile_users(&mut lock(&self.writers), users);
        let next_sessions = reconcile_sessions(&mut lock(&self.session_writers), users);
        drop(view);
        set_if_changed(&self.entries, next);
        set_if_changed(&self.sessions, next_sessions);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Updates each user's signal in place (only if it changed) and returns the entries in order.
fn reconcile_users(writers: &mut Writers, users: &[UserPresence]) -> Vec<UserEntry> {
    let mut next = Vec::with_capacity(users.len());
    for user in users {
        let entry = match writers.get(user.user_id.as_str()) {
            Some((writer, entry)) => {
                if *writer.read_untracked() != *user {
                    writer.set(user.clone());
                }
                entry.clone()
            }
            None => {
                let writer = ArcRwSignal::new(user.clone());
                let entry = UserEntry {
                    user_id: Arc::from(user.user_id.as_str()),
                    presence: writer.read_only(),
                };
                writers.insert(entry.user_id.clone(), (writer, entry.clone()));
                entry
            }
        };
        next.push(entry);
    }
    let listed: std::collections::HashSet<&str> =
        users.iter().map(|u| u.user_id.as_str()).collect();
    writers.retain(|id, _| listed.contains(&**id));
    next
}

/// The same for every live session.
fn reconcile_sessions(writers: &mut SessionWriters, users: &[UserPresence]) -> Vec<SessionEntry> {
    let mut next = Vec::new();
    for user in users {
        for session in &user.sessions {
            let now = OtherSession {
                user_id: user.user_id.clone(),
                user_name: user.name.clone(),
                session: session.clone(),
            };
            let entry = match writers.get(session.session_id.as_str()) {
                Some((writer, entry)) if *entry.user_id == *user.user_id => {
                    if *writer.read_untracked() != now {
                        writer.set(now);
                    }
                    entry.clone()
                }
                _ => {
                    let writer = ArcRwSignal::new(now);
                    let entry = SessionEntry {
                        session_id: Arc::from(session.session_id.as_str()),
                        user_id: Arc::from(user.user_id.as_str()),
                        presence: writer.read_only(),
                    };
                    writers.insert(entry.session_id.clone(), (writer, entry.clone()));
                    entry
                }
            };
            next.push(entry);
        }
    }
    let live: std::collections::HashSet<&str> = next.iter().map(|e| &*e.session_id).collect();
    writers.retain(|id, _| live.contains(&**id));
    next
}

/// Sets `list` to `next` only if its entries or their order changed (an entry is its id and its
/// signal: one remade for a session id that came back under another user counts as changed). An
/// update inside an entry reaches its own signal, not the list.
fn set_if_changed<T: PartialEq + Send + Sync + 'static>(list: &ArcRwSignal<Vec<T>>, next: Vec<T>) {
    if !list.with_untracked(|current| *current == next) {
        list.set(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_core::wire::{LeaveReason, SessionPresence};

    fn user(id: &str, online_since: u64, state: Option<serde_json::Value>) -> UserPresence {
        let mut session = SessionPresence::new(format!("s-{id}"), id);
        session.state = state;
        session.joined_seq = online_since;
        let mut user = UserPresence::new(id, id, vec![session]);
        user.online_since = online_since;
        user
    }

    /// The diff the server sends when `user`'s one session joined: its head and that session.
    fn joined(seq: u64, user: UserPresence) -> RoomMessage {
        RoomMessage::Joined {
            seq,
            session_id: user.sessions[0].session_id.clone(),
            session: user.sessions[0].clone(),
            user: user.head(),
        }
    }

    /// The same when that session changed.
    fn updated(seq: u64, user: UserPresence) -> RoomMessage {
        RoomMessage::Updated {
            seq,
            session_id: user.sessions[0].session_id.clone(),
            session: user.sessions[0].clone(),
            user: user.head(),
        }
    }

    #[test]
    fn a_summary_lists_the_first_users_and_me_and_a_snapshot_brings_everyone_back() {
        use presence_core::wire::RoomSummary;
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot::new("r", 1, vec![user("a", 1, None)])));
        assert!(!store.summarized().get_untracked());
        assert_eq!(store.counts().get_untracked().online, 1);
        let mut counts = RoomCounts::default();
        counts.users = 900;
        counts.online = 800;
        let first = vec![user("a", 1, None), user("b", 2, None)];
        store.apply(RoomMessage::Summary(RoomSummary::new(
            "r",
            50,
            counts,
            Some(first),
        )));
        store.apply(RoomMessage::Me {
            seq: 50,
            user: Some(user("me", 40, None)),
        });
        let ids = |s: &PresenceStore| -> Vec<String> {
            s.entries()
                .get_untracked()
                .iter()
                .map(|e| e.user_id.to_string())
                .collect()
        };
        assert!(store.summarized().get_untracked());
        assert_eq!(ids(&store), ["a", "b", "me"]);
        assert_eq!(store.counts().get_untracked().users, 900);
        let a = store.entries().get_untracked()[0].clone();

        // Counts alone keep the list; a diff of the full list is ignored; `me` among the first
        // replaces that entry in place.
        counts.users = 901;
        store.apply(RoomMessage::Summary(RoomSummary::new(
            "r", 51, counts, None,
        )));
        assert_eq!(store.counts().get_untracked().users, 901);
        let ignored = joined(52, user("x", 52, None));
        assert_eq!(store.apply(ignored), Applied::Stale);
        store.apply(RoomMessage::Me {
            seq: 52,
            user: Some(user("b", 2, Some(serde_json::json!(1)))),
        });
        assert_eq!(ids(&store), ["a", "b"]);
        assert_eq!(store.entries().get_untracked()[0], a, "a kept its handle");

        store.apply(RoomMessage::Snapshot(RoomSnapshot::new(
            "r",
            60,
            vec![user("z", 1, None)],
        )));
        assert!(!store.summarized().get_untracked());
        assert_eq!(ids(&store), ["z"]);
        assert_eq!(store.counts().get_untracked().users, 1);
    }

    #[test]
    fn an_update_changes_one_user_signal_and_not_the_list() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot::new(
            "r",
            2,
            vec![user("a", 1, None), user("b", 2, None)],
        )));
        let before = store.entries().get_untracked();
        assert_eq!(before.len(), 2);

        store.apply(updated(
            3,
            user("b", 2, Some(serde_json::json!({"typing": true}))),
        ));
        let after = store.entries().get_untracked();
        assert_eq!(before, after, "same handles, same order");
        assert_eq!(
            after[1].presence.get_untracked().sessions[0].state,
            Some(serde_json::json!({"typing": true}))
        );
        assert_eq!(after[0].presence.get_untracked(), user("a", 1, None));
    }

    #[test]
    fn a_session_update_changes_its_own_signal_and_not_the_session_list() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot::new(
            "r",
            2,
            vec![user("a", 1, None), user("b", 2, None)],
        )));
        let before = store.sessions().get_untracked();
        let ids: Vec<&str> = before.iter().map(|e| &*e.session_id).collect();
        assert_eq!(ids, ["s-a", "s-b"]);
        store.apply(updated(
            3,
            user("b", 2, Some(serde_json::json!({"section": "faq"}))),
        ));
        let after = store.sessions().get_untracked();
        assert_eq!(before, after, "same handles, same order");
        #[derive(serde::Deserialize)]
        struct Cursor {
            section: String,
        }
        assert_eq!(
            after[1].state_as::<Cursor>().map(|c| c.section).as_deref(),
            Some("faq"),
            "the entry held since before the change reads the new state"
        );
        assert_eq!(after[0].get().session.state, None);
    }

    #[test]
    fn a_session_id_that_comes_back_under_another_user_gets_a_fresh_entry() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot::new("r", 1, vec![user("a", 1, None)])));
        let mut b = user("b", 2, None);
        b.sessions[0].session_id = "s-a".into(); // the same session id, now b's
        store.apply(RoomMessage::Snapshot(RoomSnapshot::new("r", 5, vec![b])));
        let sessions = store.sessions().get_untracked();
        assert_eq!(sessions.len(), 1);
        assert_eq!(&*sessions[0].user_id, "b");
        assert_eq!(
            sessions[0].get().user_id,
            "b",
            "the listed entry is the live one"
        );
    }

    #[test]
    fn joins_and_leaves_change_the_list_but_keep_other_handles() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot::new("r", 1, vec![user("a", 1, None)])));
        let a = store.entries().get_untracked()[0].clone();
        store.apply(joined(2, user("b", 2, None)));
        let mut gone = user("a", 1, None);
        gone.online = false;
        gone.last_seen = Some(5);
        gone.sessions.clear();
        store.apply(RoomMessage::Left {
            seq: 3,
            session_id: "s-a".into(),
            reason: LeaveReason::Disconnected,
            user: gone.head(),
        });
        let entries = store.entries().get_untracked();
        let ids: Vec<&str> = entries.iter().map(|e| &*e.user_id).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(entries[1], a, "a kept its handle while moving");
        assert!(!a.presence.get_untracked().online);
        store.clear();
        assert!(store.entries().get_untracked().is_empty());
    }
}
