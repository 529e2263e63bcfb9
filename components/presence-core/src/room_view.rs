//! A client-side copy of a room, kept current by applying [`RoomMessage`]s.

use crate::wire::{RoomMessage, RoomSnapshot, SessionPresence, UserHead, UserPresence};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A room as a subscriber sees it: apply the snapshot, then each diff.
///
/// Users stay in the room's stable order (online by `online_since`, then offline by most recent
/// `last_seen`). Applying a diff replaces only the user it names, so callers that keep per-user
/// state (DOM nodes, memos) see unchanged users unchanged. A diff names one session: the view
/// puts it among the user's sessions (by `joined_seq`) or takes it out, and keeps the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomView {
    room: String,
    seq: u64,
    synced: bool,
    users: Vec<UserPresence>,
    /// Each listed user's place in the order, by id: a user is found by a binary search, not a
    /// scan (a room that fills up would otherwise cost N² comparisons).
    places: HashMap<String, Place>,
}

/// What decides a user's place in the room's order, besides its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    online: bool,
    online_since: u64,
    last_seen: Option<u64>,
}

impl Place {
    fn of(user: &UserPresence) -> Self {
        Place {
            online: user.online,
            online_since: user.online_since,
            last_seen: user.last_seen,
        }
    }
}

/// What [`RoomView::apply`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The view changed.
    Changed,
    /// The message was old (its `seq` is not newer than the view's); nothing changed.
    Stale,
    /// The message skips sequence numbers, or no snapshot came first: the view needs a snapshot.
    NeedsSnapshot,
}

impl RoomView {
    /// A view built from a snapshot.
    pub fn from_snapshot(snapshot: RoomSnapshot) -> Self {
        let mut view = RoomView::default();
        view.apply(RoomMessage::Snapshot(snapshot));
        view
    }

    /// The room id ("" before the first snapshot).
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The sequence number the view is current to.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// True once a snapshot has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The users, in the room's stable order.
    pub fn users(&self) -> &[UserPresence] {
        &self.users
    }

    /// Applies one message. Diffs must follow each other without gaps.
    pub fn apply(&mut self, message: RoomMessage) -> Applied {
        if matches!(message, RoomMessage::Summary(_) | RoomMessage::Me { .. }) {
            // A summary subscription's messages: not a full list, nothing to apply.
            return Applied::Stale;
        }
        if let RoomMessage::Snapshot(snapshot) = message {
            self.room = snapshot.room;
            self.seq = snapshot.seq;
            self.synced = true;
            self.users = snapshot.users;
            self.users.sort_by(room_order);
            self.places = HashMap::with_capacity(self.users.len());
            for u in &self.users {
                self.places
                    .entry(u.user_id.clone())
                    .or_insert_with(|| Place::of(u));
            }
            // A snapshot that lists a user twice (no server sends one): the listing first in
            // the room's order is kept.
            if self.places.len() < self.users.len() {
                let places = &self.places;
                self.users
                    .retain(|u| places.get(&u.user_id) == Some(&Place::of(u)));
                self.users.dedup_by(|a, b| a.user_id == b.user_id);
            }
            return Applied::Changed;
        }
        let seq = message.seq();
        if !self.synced {
            return Applied::NeedsSnapshot;
        }
        if seq <= self.seq {
            return Applied::Stale;
        }
        if seq != self.seq + 1 {
            return Applied::NeedsSnapshot;
        }
        self.apply_in_order(message);
        Applied::Changed
    }

    /// Applies a diff from a stream whose order the engine guarantees (the server's own
    /// subscriptions, which resync with a snapshot after a gap): no gap check. Older messages
    /// and summaries are ignored.
    pub fn apply_in_order(&mut self, message: RoomMessage) {
        let seq = message.seq();
        if let RoomMessage::Snapshot(_) = message {
            self.apply(message);
            return;
        }
        if !self.synced || seq <= self.seq {
            return;
        }
        self.seq = seq;
        match message {
            RoomMessage::Snapshot(_) | RoomMessage::Summary(_) | RoomMessage::Me { .. } => {}
            RoomMessage::Joined { user, session, .. }
            | RoomMessage::Updated { user, session, .. } => {
                let user = self.patched(user, Change::Put(session));
                self.upsert(user)
            }
            RoomMessage::Left {
                user, session_id, ..
            } => {
                let user = self.patched(user, Change::Take(&session_id));
                self.upsert(user)
            }
            RoomMessage::Removed { user_id, .. } => {
                if let Some(i) = self.index_of(&user_id) {
                    self.users.remove(i);
                    self.places.remove(&user_id);
                }
            }
        }
    }

    /// A listed user, by id.
    pub fn user(&self, user_id: &str) -> Option<&UserPresence> {
        self.index_of(user_id).map(|i| &self.users[i])
    }

    /// Where a listed user is in `users`.
    fn index_of(&self, user_id: &str) -> Option<usize> {
        let place = self.places.get(user_id)?;
        let i = self.users.partition_point(|u| {
            order(Place::of(u), &u.user_id, *place, user_id) == Ordering::Less
        });
        (self.users.get(i)?.user_id == user_id).then_some(i)
    }

    /// The user a diff makes: its head, and the sessions the view has for it with the diff's
    /// one session put in or taken out. An offline user has none. The list is allocated at its
    /// exact size: a room of thousands keeps one per user (a growing `Vec` would reserve four).
    fn patched(&self, head: UserHead, change: Change<'_>) -> UserPresence {
        let old: &[SessionPresence] = match self.user(&head.user_id) {
            Some(old) if head.online => &old.sessions,
            _ => &[],
        };
        let sessions = match change {
            Change::Put(_) if !head.online => Vec::new(),
            Change::Put(session) => {
                let others = old.iter().filter(|s| s.session_id != session.session_id);
                let mut sessions = Vec::with_capacity(others.clone().count() + 1);
                sessions.extend(others.cloned());
                let key = (session.joined_seq, session.session_id.as_str());
                let at = sessions.partition_point(|s| (s.joined_seq, s.session_id.as_str()) < key);
                sessions.insert(at, session);
                sessions
            }
            Change::Take(id) => {
                let others = old.iter().filter(|s| s.session_id != id);
                let mut sessions = Vec::with_capacity(others.clone().count());
                sessions.extend(others.cloned());
                sessions
            }
        };
        head.with_sessions(sessions)
    }

    fn upsert(&mut self, user: UserPresence) {
        let place = Place::of(&user);
        if let Some(i) = self.index_of(&user.user_id) {
            if Place::of(&self.users[i]) == place {
                // Same place in the order: replace in place, nobody else moves.
                self.users[i] = user;
                return;
            }
            self.users.remove(i);
        }
        let at = self
            .users
            .partition_point(|u| room_order(u, &user) == Ordering::Less);
        self.places.insert(user.user_id.clone(), place);
        self.users.insert(at, user);
    }
}

/// What a diff does to the sessions of the user it names.
enum Change<'a> {
    /// The session joined or changed: it replaces the one with its id, or goes in by `joined_seq`.
    Put(SessionPresence),
    /// The session left.
    Take(&'a str),
}

/// The room's stable order: online users by `online_since`, then offline users by most recent
/// `last_seen`, ties by user id.
pub fn room_order(a: &UserPresence, b: &UserPresence) -> Ordering {
    order(Place::of(a), &a.user_id, Place::of(b), &b.user_id)
}

fn order(a: Place, a_id: &str, b: Place, b_id: &str) -> Ordering {
    match (a.online, b.online) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (true, true) => a.online_since.cmp(&b.online_since),
        (false, false) => b.last_seen.cmp(&a.last_seen),
    }
    .then_with(|| a_id.cmp(b_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, online: bool, online_since: u64, last_seen: Option<u64>) -> UserPresence {
        UserPresence {
            user_id: id.into(),
            name: id.into(),
            kind: Default::default(),
            online,
            away: false,
            idle: false,
            online_since,
            last_seen,
            sessions: vec![],
        }
    }

    fn snapshot(seq: u64, users: Vec<UserPresence>) -> RoomMessage {
        RoomMessage::Snapshot(RoomSnapshot {
            room: "r".into(),
            seq,
            users,
        })
    }

    fn ids(v: &RoomView) -> Vec<&str> {
        v.users().iter().map(|u| u.user_id.as_str()).collect()
    }

    #[test]
    fn snapshot_is_put_in_room_order() {
        let mut v = RoomView::default();
        v.apply(snapshot(
            5,
            vec![
                user("off-old", false, 1, Some(100)),
                user("b", true, 4, None),
                user("off-new", false, 2, Some(200)),
                user("a", true, 3, None),
            ],
        ));
        assert_eq!(ids(&v), ["a", "b", "off-new", "off-old"]);
    }

    #[test]
    fn diffs_need_a_snapshot_and_no_gaps() {
        let mut v = RoomView::default();
        let joined = |seq| RoomMessage::Joined {
            seq,
            session_id: "s".into(),
            user: user("a", true, seq, None).head(),
            session: SessionPresence::new("s", "a"),
        };
        assert_eq!(v.apply(joined(1)), Applied::NeedsSnapshot);
        v.apply(snapshot(3, vec![]));
        assert_eq!(v.apply(joined(3)), Applied::Stale);
        assert_eq!(v.apply(joined(5)), Applied::NeedsSnapshot);
        assert_eq!(v.apply(joined(4)), Applied::Changed);
        assert_eq!(ids(&v), ["a"]);
        assert_eq!(v.seq(), 4);
    }

    #[test]
    fn going_offline_moves_a_user_after_the_online_ones_and_removed_drops_it() {
        let mut v = RoomView::from_snapshot(RoomSnapshot {
            room: "r".into(),
            seq: 2,
            users: vec![user("a", true, 1, None), user("b", true, 2, None)],
        });
        v.apply(RoomMessage::Left {
            seq: 3,
            session_id: "s".into(),
            reason: crate::wire::LeaveReason::Expired,
            user: user("a", false, 1, Some(10)).head(),
        });
        assert_eq!(ids(&v), ["b", "a"]);
        v.apply(RoomMessage::Removed {
            seq: 4,
            user_id: "a".into(),
        });
        assert_eq!(ids(&v), ["b"]);
    }

    fn session(id: &str, joined_seq: u64, state: u64) -> SessionPresence {
        let mut s = SessionPresence::new(id, "Ada");
        s.joined_seq = joined_seq;
        s.state = Some(serde_json::json!(state));
        s
    }

    fn sessions(v: &RoomView, user: &str) -> Vec<(String, Option<serde_json::Value>)> {
        let user = v.user(user).expect("listed");
        user.sessions
            .iter()
            .map(|s| (s.session_id.clone(), s.state.clone()))
            .collect()
    }

    #[test]
    fn a_diff_names_one_session_and_the_view_keeps_the_others() {
        let ada = |online, last_seen| {
            let mut u = user("ada", online, 1, last_seen);
            u.name = "Ada".into();
            u.head()
        };
        let mut v = RoomView::from_snapshot(RoomSnapshot {
            room: "r".into(),
            seq: 4,
            users: vec![
                ada(true, None).with_sessions(vec![session("t1", 1, 0), session("t3", 3, 0)])
            ],
        });
        // One session changes: the other stays as it was.
        v.apply(RoomMessage::Updated {
            seq: 5,
            session_id: "t3".into(),
            user: ada(true, None),
            session: session("t3", 3, 7),
        });
        let expected = [
            ("t1", Some(serde_json::json!(0))),
            ("t3", Some(serde_json::json!(7))),
        ]
        .map(|(id, state)| (id.to_string(), state));
        assert_eq!(sessions(&v, "ada"), expected);
        // Joins go in by joined_seq (one whose join was delayed lands before a later one).
        for (seq, id, joined_seq) in [(6, "t5", 5), (7, "t2", 2)] {
            v.apply(RoomMessage::Joined {
                seq,
                session_id: id.into(),
                user: ada(true, None),
                session: session(id, joined_seq, 1),
            });
        }
        let ids: Vec<String> = sessions(&v, "ada").into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["t1", "t2", "t3", "t5"]);
        // A leave takes that one out.
        v.apply(RoomMessage::Left {
            seq: 8,
            session_id: "t3".into(),
            reason: crate::wire::LeaveReason::Disconnected,
            user: ada(true, None),
        });
        let ids: Vec<String> = sessions(&v, "ada").into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["t1", "t2", "t5"]);
        assert_eq!(
            v.user("ada").unwrap().sessions[0].state,
            Some(serde_json::json!(0))
        );
        // A user the diff shows offline has no sessions, whatever the view held.
        v.apply(RoomMessage::Left {
            seq: 9,
            session_id: "t1".into(),
            reason: crate::wire::LeaveReason::Expired,
            user: ada(false, Some(99)),
        });
        assert!(sessions(&v, "ada").is_empty());
        assert_eq!(v.user("ada").unwrap().last_seen, Some(99));
        // Back online with one new session: only it.
        v.apply(RoomMessage::Joined {
            seq: 10,
            session_id: "t9".into(),
            user: ada(true, None),
            session: session("t9", 10, 0),
        });
        let ids: Vec<String> = sessions(&v, "ada").into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["t9"]);
        // Kept at its exact size: a room of 10,000 one-tab users holds 10,000 sessions, not
        // room for 40,000.
        assert_eq!(v.user("ada").unwrap().sessions.capacity(), 1);
    }

    #[test]
    fn a_snapshot_listing_a_user_twice_keeps_one_and_it_can_be_removed() {
        let mut v = RoomView::default();
        v.apply(snapshot(
            1,
            vec![
                user("a", true, 5, None),
                user("b", true, 2, None),
                user("a", true, 1, None),
                user("b", true, 2, None),
            ],
        ));
        assert_eq!(ids(&v), ["a", "b"]);
        assert_eq!(v.user("a").unwrap().online_since, 1);
        v.apply(RoomMessage::Removed {
            seq: 2,
            user_id: "a".into(),
        });
        assert_eq!(ids(&v), ["b"]);
        assert!(v.user("a").is_none());
    }

    /// The view against the plainest model of it: every listed user with its sessions, both
    /// sorted afresh after each change. Random joins, leaves, updates (some keeping their place,
    /// some moving, many sharing a time; each naming one of a user's sessions), removals and
    /// snapshots; the lookup by id agrees too.
    #[test]
    fn a_view_matches_a_list_sorted_afresh_after_random_changes() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut below = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut view = RoomView::default();
        let mut model: Vec<UserPresence> = Vec::new();
        let mut seq = 1;
        view.apply(snapshot(seq, vec![]));
        for _ in 0..5_000 {
            seq += 1;
            let id = format!("u{}", below(40));
            // Few distinct times: ties are broken by id.
            let (online, at) = (below(3) != 0, below(6));
            let head = user(&id, online, at, (!online).then_some(at)).head();
            let sid = format!("s{}", below(4));
            let message = match below(12) {
                0 => RoomMessage::Removed {
                    seq,
                    user_id: id.clone(),
                },
                1 => {
                    let users: Vec<_> = model.iter().rev().cloned().collect();
                    snapshot(seq, users)
                }
                2..=4 => RoomMessage::Left {
                    seq,
                    session_id: sid.clone(),
                    reason: crate::wire::LeaveReason::Disconnected,
                    user: head.clone(),
                },
                _ => RoomMessage::Updated {
                    seq,
                    session_id: sid.clone(),
                    user: head.clone(),
                    session: session(&sid, below(8), below(3)),
                },
            };
            let put = match &message {
                RoomMessage::Updated { session, .. } => Some(Some(session.clone())),
                RoomMessage::Left { .. } => Some(None),
                RoomMessage::Removed { user_id, .. } => {
                    model.retain(|u| &u.user_id != user_id);
                    None
                }
                _ => None,
            };
            if let Some(put) = put {
                let old = model
                    .iter()
                    .position(|u| u.user_id == id)
                    .map(|i| model.remove(i));
                let mut sessions = match old {
                    Some(old) if online => old.sessions,
                    _ => vec![],
                };
                sessions.retain(|s| s.session_id != sid);
                sessions.extend(put.filter(|_| online));
                sessions.sort_by(|a, b| {
                    (a.joined_seq, &a.session_id).cmp(&(b.joined_seq, &b.session_id))
                });
                model.push(head.clone().with_sessions(sessions));
            }
            model.sort_by(room_order);
            assert_eq!(view.apply(message), Applied::Changed);
            assert_eq!(view.users(), model.as_slice());
            let probe = format!("u{}", below(41));
            assert_eq!(view.user(&probe), model.iter().find(|u| u.user_id == probe));
        }
    }
}
