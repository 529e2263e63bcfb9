//! The room as signals: one list signal that changes only when membership or order changes, and
//! one signal per user that changes only when that user does. Views keyed by user id therefore
//! keep their DOM nodes while other users come, go and change.

use leptos::prelude::*;
use presence_core::room_view::Applied;
use presence_core::wire::{RoomMessage, RoomSnapshot, UserPresence};
use presence_core::RoomView;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One user of the room, as a stable handle: `user_id` never changes, `presence` is a signal that
/// updates in place when the user changes.
#[derive(Clone, Debug)]
pub struct UserEntry {
    /// The user id (use it as the key of a `<For/>`).
    pub user_id: Arc<str>,
    /// The user's current presence.
    pub presence: ArcReadSignal<UserPresence>,
}

impl PartialEq for UserEntry {
    fn eq(&self, other: &Self) -> bool {
        self.user_id == other.user_id && self.presence == other.presence
    }
}

/// Each listed user's writable signal and the read-only entry handed out for it.
type Writers = HashMap<Arc<str>, (ArcRwSignal<UserPresence>, UserEntry)>;

/// Applies room messages and reconciles the result into signals.
#[derive(Clone)]
pub(crate) struct PresenceStore {
    view: Arc<Mutex<RoomView>>,
    writers: Arc<Mutex<Writers>>,
    entries: ArcRwSignal<Vec<UserEntry>>,
}

impl PresenceStore {
    pub fn new(initial: Option<RoomSnapshot>) -> Self {
        let store = PresenceStore {
            view: Arc::default(),
            writers: Arc::default(),
            entries: ArcRwSignal::new(Vec::new()),
        };
        if let Some(snapshot) = initial {
            store.apply(RoomMessage::Snapshot(snapshot));
        }
        store
    }

    pub fn entries(&self) -> ArcReadSignal<Vec<UserEntry>> {
        self.entries.read_only()
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
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn clear(&self) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = RoomView::default();
        self.reconcile();
    }

    fn reconcile(&self) {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::with_capacity(view.users().len());
        for user in view.users() {
            match writers.get(user.user_id.as_str()) {
                Some((writer, entry)) => {
                    if *writer.read_untracked() != *user {
                        writer.set(user.clone());
                    }
                    next.push(entry.clone());
                }
                None => {
                    let writer = ArcRwSignal::new(user.clone());
                    let entry = UserEntry {
                        user_id: Arc::from(user.user_id.as_str()),
                        presence: writer.read_only(),
                    };
                    writers.insert(entry.user_id.clone(), (writer, entry.clone()));
                    next.push(entry);
                }
            }
        }
        writers.retain(|id, _| next.iter().any(|e| e.user_id == *id));
        drop(writers);
        drop(view);
        let same_order = self.entries.with_untracked(|current| {
            current.len() == next.len()
                && current
                    .iter()
                    .zip(&next)
                    .all(|(a, b)| a.user_id == b.user_id)
        });
        if !same_order {
            self.entries.set(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_core::wire::{LeaveReason, SessionPresence, SessionStatus};

    fn user(id: &str, online_since: u64, state: Option<serde_json::Value>) -> UserPresence {
        UserPresence {
            user_id: id.into(),
            name: id.into(),
            online: true,
            away: false,
            online_since,
            last_seen: None,
            sessions: vec![SessionPresence {
                session_id: format!("s-{id}"),
                name: id.into(),
                status: SessionStatus::Active,
                state,
                joined_at: 0,
                joined_seq: online_since,
            }],
        }
    }

    #[test]
    fn an_update_changes_one_user_signal_and_not_the_list() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot {
            room: "r".into(),
            seq: 2,
            users: vec![user("a", 1, None), user("b", 2, None)],
        }));
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
    fn joins_and_leaves_change_the_list_but_keep_other_handles() {
        let _owner = Owner::new();
        let store = PresenceStore::new(Some(RoomSnapshot {
            room: "r".into(),
            seq: 1,
            users: vec![user("a", 1, None)],
        }));
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
