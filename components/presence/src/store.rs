//! The room as signals: list signals that change only when membership or order changes, and one
//! signal per user and per session that changes only when that user or session does. Views keyed
//! by user id or session id therefore keep their DOM nodes while others come, go and change, and
//! update those nodes in place.

use leptos::prelude::*;
use presence_core::room_view::Applied;
use presence_core::wire::{RoomMessage, RoomSnapshot, SessionPresence, UserPresence};
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

/// Applies room messages and reconciles the result into signals.
#[derive(Clone)]
pub(crate) struct PresenceStore {
    view: Arc<Mutex<RoomView>>,
    writers: Arc<Mutex<Writers>>,
    session_writers: Arc<Mutex<SessionWriters>>,
    entries: ArcRwSignal<Vec<UserEntry>>,
    sessions: ArcRwSignal<Vec<SessionEntry>>,
}

impl PresenceStore {
    pub fn new(initial: Option<RoomSnapshot>) -> Self {
        let store = PresenceStore {
            view: Arc::default(),
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

    /// Applies one message; on `NeedsSnapshot` the caller must resubscribe.
    pub fn apply(&self, message: RoomMessage) -> Applied {
        let applied = self
            .view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(message);
        if applied == Applied::Changed {
            self.reconcile();
        }
        applied
    }

    /// Forgets everything (the room changed).
    #[cfg_attr(not(any(feature = "hydrate", feature = "csr")), allow(dead_code))]
    pub fn clear(&self) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = RoomView::default();
        self.reconcile();
    }

    fn reconcile(&self) {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let next = reconcile_users(
            &mut self.writers.lock().unwrap_or_else(|e| e.into_inner()),
            view.users(),
        );
        let next_sessions = reconcile_sessions(
            &mut self
                .session_writers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            view.users(),
        );
        drop(view);
        set_if_changed(&self.entries, next);
        set_if_changed(&self.sessions, next_sessions);
    }
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

        store.apply(RoomMessage::Updated {
            seq: 3,
            session_id: "s-b".into(),
            user: user("b", 2, Some(serde_json::json!({"typing": true}))),
        });
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
        store.apply(RoomMessage::Updated {
            seq: 3,
            session_id: "s-b".into(),
            user: user("b", 2, Some(serde_json::json!({"section": "faq"}))),
        });
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
        store.apply(RoomMessage::Joined {
            seq: 2,
            session_id: "s-b".into(),
            user: user("b", 2, None),
        });
        let mut gone = user("a", 1, None);
        gone.online = false;
        gone.last_seen = Some(5);
        gone.sessions.clear();
        store.apply(RoomMessage::Left {
            seq: 3,
            session_id: "s-a".into(),
            reason: LeaveReason::Disconnected,
            user: gone,
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
