//! Every presence operation, on plain data, with "now" passed in. No locks, no tasks, no I/O:
//! [`crate::server::Presence`] wraps it in a mutex and drives [`Registry::expire_due`] from one scheduler.

use super::deadlines::{DeadlineQueue, Owner};
use super::room::{Map, Room, Session, User};
use crate::error::{Field, PresenceError};
use crate::limits::{clamp_interval, expiry_after};
use crate::server::config::PresenceConfig;
use crate::server::rate::Bucket;
use crate::server::subscription::{RoomChange, SharedMessage, CHANGES_BUFFER};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::validate;
use crate::wire::{HeartbeatRequest, LeaveReason, RoomMessage, RoomSnapshot};
use serde_json::Value;
use smallvec::SmallVec;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What a heartbeat did (the room token is added by the caller, which holds the signing key).
#[derive(Debug)]
pub(crate) struct HeartbeatOutcome {
    pub token: SessionToken,
    pub joined: bool,
    pub interval_ms: u64,
    pub expires_at: u64,
    pub room_token: Arc<str>,
}

/// What subscribing yields: the hold, the snapshot message, and a receiver for what follows.
pub(crate) type Subscribed = (
    SubscriberKey,
    Arc<SharedMessage>,
    broadcast::Receiver<Arc<SharedMessage>>,
);

/// A subscription's hold on a room (and perhaps on one session).
#[derive(Debug, Clone)]
pub(crate) struct SubscriberKey {
    pub room: Arc<str>,
    pub session: Option<(Arc<str>, SessionToken)>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    config: PresenceConfig,
    room_key: RoomTokenKey,
    rooms: Map<Arc<str>, Room>,
    tokens: Map<SessionToken, (Arc<str>, Arc<str>)>,
    /// user id → rooms where that user is online.
    user_rooms: Map<Arc<str>, SmallVec<[Arc<str>; 1]>>,
    pub(crate) queue: DeadlineQueue,
    /// Offline users listed across all rooms (each holds one retention entry in the queue).
    offline_total: usize,
    /// Every room's changes, for server-side readers.
    all: broadcast::Sender<RoomChange>,
}

impl Registry {
    pub fn new(config: PresenceConfig, room_key: RoomTokenKey) -> Self {
        Registry {
            config,
            room_key,
            rooms: Map::default(),
            tokens: Map::default(),
            user_rooms: Map::default(),
            queue: DeadlineQueue::default(),
            offline_total: 0,
            all: broadcast::channel(CHANGES_BUFFER).0,
        }
    }

    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// Joins or keeps a session alive. For a live session whose name, state and away flag are
    /// unchanged this is two hash lookups, a token comparison and a few stores: nothing is
    /// validated again (the ids were checked when the session was created), nothing is queued,
    /// nothing is published.
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        now: u64,
    ) -> Result<HeartbeatOutcome, PresenceError> {
        let interval_ms = clamp_interval(req.interval_ms);
        let expires_at = now + expiry_after(interval_ms);

        let Some(room) = self.rooms.get_mut(req.room.as_str()) else {
            return self.join(req, interval_ms, expires_at, now);
        };
        let Some(session) = room.sessions.get_mut(req.session.as_str()) else {
            return self.join(req, interval_ms, expires_at, now);
        };
        // An existing session: only its token holder may keep it alive or change it.
        let holds_token = req
            .session_token
            .as_deref()
            .is_some_and(|t| session.token.matches_hex(t));
        if !holds_token {
            return Err(
                match req.session_token.as_deref().map(SessionToken::parse) {
                    Some(Err(malformed)) => malformed,
                    _ => PresenceError::SessionTokenMismatch {
                        session: req.session.clone(),
                    },
                },
            );
        }
        if *session.user != *req.user {
            // Its token, under another user id (with an auth hook: another caller's session).
            return Err(PresenceError::Forbidden {
                reason: "this session belongs to another user".into(),
            });
        }
        session.bucket.take(self.config.session_rate, now)?;
        // Names are stored trimmed (see `validate`): compare the trimmed form.
        let name = validate::name_as_stored(&req.name);
        let name_changed = session.name != name;
        if name_changed {
            validate::name(name)?;
        }
        let new_state = match &req.state {
            Some(state) if state.is_null() => session.state.is_some().then_some(None),
            Some(state) if session.state.as_deref() != Some(state) => {
                validate::state(state)?;
                Some(Some(Box::new(state.clone())))
            }
            _ => None,
        };
        session.expires_at = expires_at;
        session.last_heartbeat = now;
        session.grace_until = None;
        if session.timer.is_none_or(|t| expires_at < t.at) {
            // Only a deadline that moved earlier is queued now; later ones are lazy.
            session.timer = Some(self.queue.push(
                expires_at,
                Owner::Session {
                    room: room.id.clone(),
                    session: Arc::from(req.session.as_str()),
                },
            ));
        }
        let token = session.token;
        if name_changed || session.away != req.away || new_state.is_some() {
            session.away = req.away;
            if let Some(state) = new_state {
                session.state = state;
            }
            if name_changed {
                session.name = name.to_string();
                let user = session.user.clone();
                if let Some(u) = room.users.get_mut(&user) {
                    u.name = name.to_string();
                }
            }
            publish_updated(room, req.session.as_str(), req.user.as_str());
        }
        Ok(HeartbeatOutcome {
            token,
            joined: false,
            interval_ms,
            expires_at,
            room_token: room.token.clone(),
        })
    }

    fn join(
        &mut self,
        req: &HeartbeatRequest,
        interval_ms: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<HeartbeatOutcome, PresenceError> {
        validate::id(Field::Room, &req.room)?;
        validate::id(Field::User, &req.user)?;
        validate::id(Field::Session, &req.session)?;
        let name = validate::name_as_stored(&req.name);
        validate::name(name)?;
        if let Some(state) = &req.state {
            validate::state(state)?;
        }
        // A token with a join is the client's proposal for the new session's token: a stale one
        // (the session ended, the server restarted) or a fresh one the client made up. Adopting it
        // makes a join idempotent: if this call timed out after the server applied it, the retry
        // (same session, same token) finds its session instead of a ghost it may not touch. A
        // token some other live session holds is not adopted. A malformed one is a client bug.
        let proposed = match &req.session_token {
            Some(token) => Some(SessionToken::parse(token)?),
            None => None,
        };
        self.check_user_caps(&req.room, &req.user)?;
        if let Some(room) = self.rooms.get(req.room.as_str()) {
            if room.sessions.len() >= self.config.max_sessions_per_room {
                return Err(PresenceError::RoomFull {
                    room: req.room.clone(),
                    limit: self.config.max_sessions_per_room,
                });
            }
        } else if self.config.max_sessions_per_room == 0 {
            return Err(PresenceError::RoomFull {
                room: req.room.clone(),
                limit: 0,
            });
        }
        let room_id: Arc<str> = self
            .rooms
            .get_key_value(req.room.as_str())
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(req.room.as_str()));
        let (key, all) = (&self.room_key, &self.all);
        let room = self
            .rooms
            .entry(room_id.clone())
            .or_insert_with(|| Room::new(room_id.clone(), key, all));
        let user_id: Arc<str> = room
            .users
            .get_key_value(req.user.as_str())
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(req.user.as_str()));
        let session_id: Arc<str> = Arc::from(req.session.as_str());
        let token = match proposed {
            Some(t) if t.looks_random() && !self.tokens.contains_key(&t) => t,
            _ => SessionToken::generate(),
        };
        let seq = room.seq + 1;

        let user = room.users.entry(user_id.clone()).or_insert_with(|| User {
            name: String::new(),
            online_since: seq,
            last_seen: Some(now),
            last_active: now,
            sessions: SmallVec::new(),
            retention_timer: None,
        });
        if user.last_seen.is_some() {
            // Coming online (new, or back from offline): placed after those already online.
            if user.sessions.is_empty() && user.retention_timer.is_some() {
                room.offline_users -= 1;
                self.offline_total -= 1;
            }
            user.online_since = seq;
            user.last_seen = None;
            user.retention_timer = None;
            self.user_rooms
                .entry(user_id.clone())
                .or_default()
                .push(room_id.clone());
        }
        user.name = name.to_string();
        user.last_active = user.last_active.max(now);
        user.sessions.push(session_id.clone());
        let timer = self.queue.push(
            expires_at,
            Owner::Session {
                room: room_id.clone(),
                session: session_id.clone(),
            },
        );
        room.sessions.insert(
            session_id.clone(),
            Session {
                user: user_id.clone(),
                name: name.to_string(),
                state: req.state.clone().and_then(non_null).map(Box::new),
                away: req.away,
                token,
                expires_at,
                last_heartbeat: now,
                grace_until: None,
                subscriptions: 0,
                bucket: Bucket::full(self.config.session_rate, now),
                timer: Some(timer),
                joined_at: now,
                joined_seq: seq,
            },
        );
        self.tokens.insert(token, (room_id, session_id.clone()));
        room.publish(|room, seq| RoomMessage::Joined {
            seq,
            session_id: session_id.to_string(),
            user: room.user_presence(&user_id).expect("just inserted"),
        });
        Ok(HeartbeatOutcome {
            token,
            joined: true,
            interval_ms,
            expires_at,
            room_token: room.token.clone(),
        })
    }

    /// Caps on how much one user may hold: sessions across rooms, and rooms.
    fn check_user_caps(&self, room: &str, user: &str) -> Result<(), PresenceError> {
        let Some(rooms) = self.user_rooms.get(user) else {
            return Ok(());
        };
        let already_here = rooms.iter().any(|r| &**r == room);
        if !already_here && rooms.len() >= self.config.max_rooms_per_user {
            return Err(PresenceError::TooManyRooms {
                limit: self.config.max_rooms_per_user,
            });
        }
        let sessions: usize = rooms
            .iter()
            .filter_map(|r| self.rooms.get(r)?.users.get(user))
            .map(|u| u.sessions.len())
            .sum();
        if sessions >= self.config.max_sessions_per_user {
            return Err(PresenceError::TooManySessions {
                limit: self.config.max_sessions_per_user,
            });
        }
        Ok(())
    }

    /// Finds the live session a token grants; with `as_user`, only if it is that user's.
    fn resolve(
        &self,
        token: &str,
        as_user: Option<&str>,
    ) -> Result<(SessionToken, Arc<str>, Arc<str>), PresenceError> {
        let token = SessionToken::parse(token).map_err(|_| PresenceError::InvalidSessionToken)?;
        let (room, session) = self
            .tokens
            .get(&token)
            .ok_or(PresenceError::InvalidSessionToken)?;
        if let Some(user) = as_user {
            let owner = self
                .rooms
                .get(room)
                .and_then(|r| r.sessions.get(session))
                .map(|s| s.user.clone());
            if owner.as_deref() != Some(user) {
                return Err(PresenceError::Forbidden {
                    reason: "this session belongs to another user".into(),
                });
            }
        }
        Ok((token, room.clone(), session.clone()))
    }

    pub fn update_state(
        &mut self,
        token: &str,
        state: Value,
        as_user: Option<&str>,
        now: u64,
    ) -> Result<(), PresenceError> {
        validate::state(&state)?;
        let (_, room_id, sid) = self.resolve(token, as_user)?;
        let room = self
            .rooms
            .get_mut(&room_id)
            .expect("tokens point at live rooms");
        let session = room
            .sessions
            .get_mut(&sid)
            .expect("tokens point at live sessions");
        session.bucket.take(self.config.session_rate, now)?;
        let state = non_null(state).map(Box::new);
        if session.state != state {
            session.state = state;
            session.last_heartbeat = session.last_heartbeat.max(now);
            let user = session.user.clone();
            publish_updated(room, &sid, &user);
        }
        Ok(())
    }

    pub fn set_away(&mut self, token: &str, away: bool, now: u64) -> Result<(), PresenceError> {
        let (_, room_id, sid) = self.resolve(token, None)?;
        let room = self
            .rooms
            .get_mut(&room_id)
            .expect("tokens point at live rooms");
        let session = room
            .sessions
            .get_mut(&sid)
            .expect("tokens point at live sessions");
        session.bucket.take(self.config.session_rate, now)?;
        if session.away != away {
            session.away = away;
            let user = session.user.clone();
            publish_updated(room, &sid, &user);
        }
        Ok(())
    }

    pub fn disconnect(
        &mut self,
        token: &str,
        as_user: Option<&str>,
        now: u64,
    ) -> Result<(), PresenceError> {
        let (_, room_id, sid) = self.resolve(token, as_user)?;
        self.end_session(&room_id, &sid, LeaveReason::Disconnected, now);
        Ok(())
    }

    /// Ends every session and retention whose deadline is `now` or earlier. Touches only due
    /// queue entries.
    pub fn expire_due(&mut self, now: u64) {
        while let Some((timer, owner)) = self.queue.pop_due(now) {
            match owner {
                Owner::Session { room, session } => {
                    let Some(r) = self.rooms.get_mut(&room) else {
                        continue;
                    };
                    let Some(s) = r.sessions.get_mut(&session) else {
                        continue;
                    };
                    if s.timer != Some(timer) {
                        continue; // replaced by a newer entry
                    }
                    s.timer = None;
                    let deadline = s.deadline();
                    if deadline <= now {
                        self.end_session(&room, &session, LeaveReason::Expired, now);
                    } else {
                        // Extended since it was queued: queue it once more at its real deadline.
                        let owner = Owner::Session {
                            room: room.clone(),
                            session: session.clone(),
                        };
                        s.timer = Some(self.queue.push(deadline, owner));
                    }
                }
                Owner::OfflineUser { room, user } => {
                    let Some(r) = self.rooms.get_mut(&room) else {
                        continue;
                    };
                    let Some(u) = r.users.get(&user) else {
                        continue;
                    };
                    if u.retention_timer != Some(timer) {
                        continue;
                    }
                    self.remove_offline_user(&room, &user);
                }
            }
        }
    }

    /// Drops queue entries that no owner holds any more once they outnumber the live ones, so
    /// memory stays flat under churn: without it, the entries of users who came back online or
    /// were dropped by the offline cap would wait out the whole retention (24 h by default).
    /// Runs after at least `live + 1024` pushes since the last time, so its O(n) rebuild costs
    /// O(1) per push.
    pub fn compact_queue_if_stale(&mut self) {
        let live = self.tokens.len() + self.offline_total;
        if self.queue.len() <= 2 * live + 1024 {
            return;
        }
        let rooms = &self.rooms;
        self.queue.retain(|timer, owner| match owner {
            Owner::Session { room, session } => rooms
                .get(room)
                .and_then(|r| r.sessions.get(session))
                .is_some_and(|s| s.timer == Some(*timer)),
            Owner::OfflineUser { room, user } => rooms
                .get(room)
                .and_then(|r| r.users.get(user))
                .is_some_and(|u| u.retention_timer == Some(*timer)),
        });
    }

    /// The earliest queued deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queue.peek()
    }

    fn end_session(&mut self, room_id: &Arc<str>, sid: &Arc<str>, reason: LeaveReason, now: u64) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(session) = room.sessions.remove(sid) else {
            return;
        };
        self.tokens.remove(&session.token);
        let user_id = session.user;
        let user = room
            .users
            .get_mut(&user_id)
            .expect("a session's user is listed");
        user.last_active = user.last_active.max(session.last_heartbeat);
        user.sessions.retain(|s| s != sid);
        let went_offline = user.sessions.is_empty();
        if went_offline {
            let last_seen = match reason {
                LeaveReason::Disconnected => now,
                LeaveReason::Expired => user.last_active,
            };
            user.last_seen = Some(last_seen);
            user.retention_timer = Some(self.queue.push(
                last_seen.saturating_add(self.config.offline_retention_ms),
                Owner::OfflineUser {
                    room: room_id.clone(),
                    user: user_id.clone(),
                },
            ));
            room.offline_users += 1;
            self.offline_total += 1;
            if let Some(rooms) = self.user_rooms.get_mut(&user_id) {
                rooms.retain(|r| r != room_id);
                if rooms.is_empty() {
                    self.user_rooms.remove(&user_id);
                }
            }
        } else if let Some(latest) = user
            .sessions
            .last()
            .and_then(|s| room.sessions.get(s))
            .map(|s| s.name.clone())
        {
            user.name = latest;
        }
        room.publish(|room, seq| RoomMessage::Left {
            seq,
            session_id: sid.to_string(),
            reason,
            user: room.user_presence(&user_id).expect("still listed"),
        });
        if went_offline {
            self.enforce_offline_cap(room_id);
        }
    }

    /// Drops the longest-gone offline users while the room lists more than allowed. Runs only
    /// when a user goes offline.
    fn enforce_offline_cap(&mut self, room_id: &Arc<str>) {
        loop {
            let Some(room) = self.rooms.get(room_id) else {
                return;
            };
            if room.offline_users <= self.config.max_offline_users_per_room {
                return;
            }
            let oldest = room
                .users
                .iter()
                .filter(|(_, u)| u.sessions.is_empty())
                .min_by(|(ia, a), (ib, b)| a.last_seen.cmp(&b.last_seen).then_with(|| ib.cmp(ia)))
                .map(|(id, _)| id.clone());
            match oldest {
                Some(user) => self.remove_offline_user(room_id, &user),
                None => return,
            }
        }
    }

    fn remove_offline_user(&mut self, room_id: &Arc<str>, user_id: &Arc<str>) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.users.remove(user_id).is_some() {
            room.offline_users -= 1;
            self.offline_total -= 1;
            room.publish(|_, seq| RoomMessage::Removed {
                seq,
                user_id: user_id.to_string(),
            });
        }
        if room.is_idle() {
            self.rooms.remove(room_id);
        }
    }

    /// The room's snapshot as a message shared by every reader until the room next changes:
    /// built, and serialized, once per room version however many read it.
    pub fn snapshot_shared(&mut self, room: &str) -> Arc<SharedMessage> {
        match self.rooms.get_mut(room) {
            Some(r) => r.snapshot_message(),
            None => Arc::new(SharedMessage::new(RoomMessage::Snapshot(RoomSnapshot {
                room: room.to_string(),
                seq: 0,
                users: Vec::new(),
            }))),
        }
    }

    #[cfg(test)]
    pub fn snapshot(&self, room: &str) -> RoomSnapshot {
        self.rooms
            .get(room)
            .map(Room::snapshot)
            .unwrap_or_else(|| RoomSnapshot {
                room: room.to_string(),
                seq: 0,
                users: Vec::new(),
            })
    }

    pub fn list_user(&self, user: &str) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .user_rooms
            .get(user)
            .map(|r| r.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// Removes a user (all its sessions) from a room. True if it was listed.
    pub fn remove_room_user(&mut self, room_id: &str, user: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return false;
        };
        let Some((user_id, removed)) = room.users.remove_entry(user) else {
            return false;
        };
        if removed.sessions.is_empty() {
            room.offline_users -= 1;
            self.offline_total -= 1;
        }
        for sid in &removed.sessions {
            if let Some(s) = room.sessions.remove(sid) {
                self.tokens.remove(&s.token);
            }
        }
        let room_key = room.id.clone();
        room.publish(|_, seq| RoomMessage::Removed {
            seq,
            user_id: user_id.to_string(),
        });
        if let Some(rooms) = self.user_rooms.get_mut(&user_id) {
            rooms.retain(|r| *r != room_key);
            if rooms.is_empty() {
                self.user_rooms.remove(&user_id);
            }
        }
        if room.is_idle() {
            self.rooms.remove(&room_key);
        }
        true
    }

    /// Removes everyone from a room. True if anyone was listed.
    pub fn remove_room(&mut self, room_id: &str) -> bool {
        let users: Vec<Arc<str>> = match self.rooms.get(room_id) {
            Some(room) => room.users.keys().cloned().collect(),
            None => return false,
        };
        for user in &users {
            self.remove_room_user(room_id, user);
        }
        !users.is_empty()
    }

    /// Opens a subscription: the room's snapshot and a receiver for every later change, taken
    /// together so nothing is missed or repeated. With a session token, the subscription holds
    /// that session: while any is open its grace deadline is off.
    pub fn subscribe(
        &mut self,
        room_id: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<Subscribed, PresenceError> {
        validate::id(Field::Room, room_id)?;
        let session = match session_token {
            Some(t) => {
                let (token, room, sid) = self.resolve(t, as_user)?;
                if *room != *room_id {
                    return Err(PresenceError::InvalidSessionToken);
                }
                Some((sid, token))
            }
            None => None,
        };
        let room_key: Arc<str> = self
            .rooms
            .get_key_value(room_id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(room_id));
        let (key, all) = (&self.room_key, &self.all);
        let room = self
            .rooms
            .entry(room_key.clone())
            .or_insert_with(|| Room::new(room_key.clone(), key, all));
        room.subscribers += 1;
        if let Some((sid, _)) = &session {
            let s = room.sessions.get_mut(sid).expect("resolved above");
            s.subscriptions += 1;
            s.grace_until = None;
        }
        let rx = room.receiver(self.config.subscriber_buffer);
        let snapshot = room.snapshot_message();
        Ok((
            SubscriberKey {
                room: room_key,
                session,
            },
            snapshot,
            rx,
        ))
    }

    /// A fresh snapshot and receiver for a subscriber that fell behind.
    pub fn resubscribe(
        &mut self,
        room_id: &Arc<str>,
    ) -> (Arc<SharedMessage>, broadcast::Receiver<Arc<SharedMessage>>) {
        let buffer = self.config.subscriber_buffer;
        let (key, all) = (&self.room_key, &self.all);
        let room = self
            .rooms
            .entry(room_id.clone())
            .or_insert_with(|| Room::new(room_id.clone(), key, all));
        let rx = room.receiver(buffer);
        (room.snapshot_message(), rx)
    }

    /// Closes a subscription. If it was the last one holding its session, the session gets the
    /// grace deadline.
    pub fn unsubscribe(&mut self, key: &SubscriberKey, now: u64) {
        let grace = self.config.subscription_grace_ms;
        let Some(room) = self.rooms.get_mut(&key.room) else {
            return;
        };
        room.subscribers = room.subscribers.saturating_sub(1);
        if let Some((sid, token)) = &key.session {
            if let Some(s) = room.sessions.get_mut(sid) {
                if s.token == *token {
                    s.subscriptions = s.subscriptions.saturating_sub(1);
                    if s.subscriptions == 0 {
                        let until = now + grace;
                        s.grace_until = Some(until);
                        if s.timer.is_none_or(|t| until < t.at) {
                            s.timer = Some(self.queue.push(
                                until,
                                Owner::Session {
                                    room: key.room.clone(),
                                    session: sid.clone(),
                                },
                            ));
                        }
                    }
                }
            }
        }
        if room.is_idle() {
            self.rooms.remove(&key.room);
        }
    }

    /// A reader of every room's changes.
    pub fn changes(&self) -> broadcast::Receiver<RoomChange> {
        self.all.subscribe()
    }

    /// Live sessions across all rooms.
    #[cfg(test)]
    pub fn session_count(&self) -> usize {
        self.tokens.len()
    }

    #[cfg(test)]
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

/// JSON `null` means "no state".
fn non_null(v: Value) -> Option<Value> {
    (!v.is_null()).then_some(v)
}

fn publish_updated(room: &mut Room, session_id: &str, user_id: &str) {
    room.publish(|room, seq| RoomMessage::Updated {
        seq,
        session_id: session_id.to_string(),
        user: room
            .user_presence(user_id)
            .expect("a session's user is listed"),
    });
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;
