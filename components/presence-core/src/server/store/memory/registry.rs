//! Every presence operation, on plain data, with "now" passed in. No locks, no tasks, no I/O:
//! [`crate::server::Presence`] wraps it in a mutex and drives [`Registry::expire_due`] from one scheduler.

use super::deadlines::{DeadlineQueue, Owner};
use super::room::{Map, Room, Session, User};
use crate::error::{Field, PresenceError};
use crate::limits::{clamp_interval, lifetime_ms};
use crate::server::config::PresenceConfig;
use crate::server::rate::Bucket;
use crate::server::rules::{self, Change, Event, Holdings, SessionFacts, UserFacts};
use crate::server::subscription::{RoomChange, SharedMessage, CHANGES_BUFFER};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::validate;
use crate::wire::{HeartbeatRequest, LeaveReason, RoomMessage, RoomSnapshot, UserStatus};
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
    /// user id → rooms that list that user (online or offline), for status lookups.
    user_listed: Map<Arc<str>, SmallVec<[Arc<str>; 1]>>,
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
            user_listed: Map::default(),
            queue: DeadlineQueue::default(),
            offline_total: 0,
            all: broadcast::channel(CHANGES_BUFFER).0,
        }
    }

    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// Joins or keeps a session alive. For a live session whose name, state and status are
    /// unchanged this is two hash lookups, a token comparison and a few stores: nothing is
    /// validated again (the ids were checked when the session was created), nothing is queued,
    /// nothing is published.
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        now: u64,
    ) -> Result<HeartbeatOutcome, PresenceError> {
        validate::ttl(req.kind, req.ttl_ms)?;
        let interval_ms = clamp_interval(req.interval_ms);
        let expires_at = now + lifetime_ms(interval_ms, req.ttl_ms);

        let Some(room) = self.rooms.get_mut(req.room.as_str()) else {
            return self.join(req, interval_ms, expires_at, now);
        };
        let visible = room.visible();
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
        let user = room
            .users
            .get_mut(&*session.user)
            .expect("a session's user is listed");
        let current = user
            .facts
            .session(&req.session)
            .expect("a live session is in its user's facts");
        let change = rules::heartbeat_change(current, req, now)?;
        let hidden = user.facts.is_hidden(&req.session);
        let flip = req.invisible != hidden;
        session.expires_at = expires_at;
        session.last_heartbeat = now;
        session.grace_until = None;
        session.goodbye_at = None;
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
        let user_id = session.user.clone();
        let changed = rules::apply(&mut user.facts, &req.session, change);
        let mut went_offline = false;
        let event = if flip && hidden {
            rules::reveal(&mut user.facts, &req.session, now, room.seq + 1);
            room.hidden -= 1;
            if user.retention_timer.take().is_some() {
                // Back from offline.
                room.offline_users -= 1;
                self.offline_total -= 1;
            }
            Some(Event::Joined {
                session: req.session.clone(),
            })
        } else if flip {
            if let Some(Some(until)) = rules::hide(&mut user.facts, &req.session, now, &self.config)
            {
                // Offline to others: kept as any offline user is.
                user.retention_timer = Some(self.queue.push(
                    until,
                    Owner::OfflineUser {
                        room: room.id.clone(),
                        user: user_id.clone(),
                    },
                ));
                room.offline_users += 1;
                self.offline_total += 1;
                went_offline = true;
            }
            room.hidden += 1;
            Some(Event::Left {
                session: req.session.clone(),
                reason: LeaveReason::Disconnected,
            })
        } else {
            (changed && !hidden).then(|| Event::Updated {
                session: req.session.clone(),
            })
        };
        if let Some(event) = event {
            publish(room, visible, &user_id, event);
        }
        let outcome = HeartbeatOutcome {
            token,
            joined: false,
            interval_ms,
            expires_at,
            room_token: room.token.clone(),
        };
        if went_offline {
            let room_id = room.id.clone();
            self.enforce_offline_cap(&room_id);
        }
        Ok(outcome)
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
        let proposed = match &req.session_token {
            Some(token) => Some(SessionToken::parse(token)?),
            None => None,
        };
        let room_sessions = self
            .rooms
            .get(req.room.as_str())
            .map_or(0, |r| r.sessions.len());
        rules::check_join(
            &self.config,
            &req.room,
            room_sessions,
            self.holdings(&req.room, &req.user),
            req.kind,
        )?;
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
        let tokens = &self.tokens;
        let token = rules::session_token(proposed, |t| tokens.contains_key(t));
        let session = rules::new_session(req, name, now, room.seq + 1);
        if !room.users.contains_key(&user_id) {
            self.user_listed
                .entry(user_id.clone())
                .or_default()
                .push(room_id.clone());
        }
        let user = room.users.entry(user_id.clone()).or_insert_with(|| User {
            facts: UserFacts::unlisted(),
            retention_timer: None,
        });
        if !req.invisible && user.retention_timer.take().is_some() {
            // Back from offline (an invisible session leaves the listing as it is).
            room.offline_users -= 1;
            self.offline_total -= 1;
        }
        if !user.facts.has_sessions() {
            self.user_rooms
                .entry(user_id.clone())
                .or_default()
                .push(room_id.clone());
        }
        if req.invisible {
            rules::join_hidden(&mut user.facts, session);
        } else {
            rules::join(&mut user.facts, session, now);
        }
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
                token,
                expires_at,
                last_heartbeat: now,
                grace_until: None,
                goodbye_at: None,
                subscriptions: 0,
                bucket: Bucket::full(self.config.session_rate, now),
                timer: Some(timer),
            },
        );
        self.tokens.insert(token, (room_id, session_id));
        if req.invisible {
            room.hidden += 1;
        } else {
            publish(
                room,
                room.visible() - 1,
                &user_id,
                Event::Joined {
                    session: req.session.clone(),
                },
            );
        }
        Ok(HeartbeatOutcome {
            token,
            joined: true,
            interval_ms,
            expires_at,
            room_token: room.token.clone(),
        })
    }

    /// What a user holds across rooms, for the caps.
    fn holdings(&self, room: &str, user: &str) -> Holdings {
        let Some(rooms) = self.user_rooms.get(user) else {
            return Holdings::default();
        };
        Holdings {
            rooms: rooms.len(),
            here: rooms.iter().any(|r| &**r == room),
            sessions: rooms
                .iter()
                .filter_map(|r| self.rooms.get(r)?.users.get(user))
                .map(|u| u.facts.session_count())
                .sum(),
        }
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
        self.change(&room_id, &sid, now, |current| {
            rules::state_change(current, state)
        })
    }

    pub fn set_away(&mut self, token: &str, away: bool, now: u64) -> Result<(), PresenceError> {
        let (_, room_id, sid) = self.resolve(token, None)?;
        self.change(&room_id, &sid, now, |current| {
            rules::away_change(current, away)
        })
    }

    /// Changes a live session as `decide` says (after its rate allows it): one `Updated` if
    /// anything changed.
    fn change(
        &mut self,
        room_id: &str,
        sid: &str,
        now: u64,
        decide: impl FnOnce(&SessionFacts) -> Change,
    ) -> Result<(), PresenceError> {
        let room = self
            .rooms
            .get_mut(room_id)
            .expect("tokens point at live rooms");
        let session = room
            .sessions
            .get_mut(sid)
            .expect("tokens point at live sessions");
        session.bucket.take(self.config.session_rate, now)?;
        let user = room
            .users
            .get_mut(&*session.user)
            .expect("a session's user is listed");
        let change = decide(user.facts.session(sid).expect("listed with its user"));
        let activity = change.state.is_some();
        let shown = !user.facts.is_hidden(sid);
        if rules::apply(&mut user.facts, sid, change) {
            if activity {
                session.last_heartbeat = rules::heard_from(session.last_heartbeat, now);
            }
            if !shown {
                return Ok(());
            }
            let user_id = session.user.clone();
            publish(
                room,
                room.visible(),
                &user_id,
                Event::Updated {
                    session: sid.to_string(),
                },
            );
        }
        Ok(())
    }

    pub fn disconnect(
        &mut self,
        token: &str,
        as_user: Option<&str>,
        now: u64,
    ) -> Result<(), PresenceError> {
        self.leave_or_go(token, as_user, now, true)
    }

    /// The session's page is going: it ends after the leave grace unless it heartbeats again
    /// first (with no grace, now).
    pub fn going(
        &mut self,
        token: &str,
        as_user: Option<&str>,
        now: u64,
    ) -> Result<(), PresenceError> {
        self.leave_or_go(token, as_user, now, self.config.leave_grace_ms == 0)
    }

    /// Ends the session now (`at_once`: a disconnect), or after the leave grace unless it
    /// heartbeats again first.
    fn leave_or_go(
        &mut self,
        token: &str,
        as_user: Option<&str>,
        now: u64,
        at_once: bool,
    ) -> Result<(), PresenceError> {
        let (_, room_id, sid) = self.resolve(token, as_user)?;
        if at_once {
            self.end_session(&room_id, &sid, LeaveReason::Disconnected, now);
            return Ok(());
        }
        let until = rules::goodbye_deadline(now, &self.config);
        let room = self
            .rooms
            .get_mut(&room_id)
            .expect("tokens point at live rooms");
        let s = room
            .sessions
            .get_mut(&sid)
            .expect("tokens point at live sessions");
        s.goodbye_at = Some(now);
        let until = rules::earlier_grace(s.grace_until, until);
        s.grace_until = Some(until);
        if s.timer.is_none_or(|t| until < t.at) {
            s.timer = Some(self.queue.push(
                until,
                Owner::Session {
                    room: room_id.clone(),
                    session: sid.clone(),
                },
            ));
        }
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
                        let (reason, at) = rules::ending(s.goodbye_at, now);
                        self.end_session(&room, &session, reason, at);
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
        let left = rules::leave(
            &mut user.facts,
            sid,
            session.last_heartbeat,
            reason,
            now,
            &self.config,
        )
        .expect("a live session is in its user's facts");
        if !user.facts.has_sessions() {
            if let Some(rooms) = self.user_rooms.get_mut(&user_id) {
                rooms.retain(|r| r != room_id);
                if rooms.is_empty() {
                    self.user_rooms.remove(&user_id);
                }
            }
        }
        if let Some(until) = left.retained_until {
            user.retention_timer = Some(self.queue.push(
                until,
                Owner::OfflineUser {
                    room: room_id.clone(),
                    user: user_id.clone(),
                },
            ));
            room.offline_users += 1;
            self.offline_total += 1;
        }
        if left.forgotten {
            // Its only sessions were invisible: it goes as it came, unseen.
            room.users.remove(&user_id);
            unlist(&mut self.user_listed, &user_id, room_id);
        }
        if left.shown {
            publish(
                room,
                room.visible() + 1,
                &user_id,
                Event::Left {
                    session: sid.to_string(),
                    reason,
                },
            );
        } else {
            room.hidden -= 1;
        }
        if left.retained_until.is_some() {
            self.enforce_offline_cap(room_id);
        } else if room.is_idle() {
            self.rooms.remove(room_id);
        }
    }

    /// Drops offline users while the room lists more than allowed (see
    /// [`rules::offline_victim`]). Runs only when a user goes offline.
    fn enforce_offline_cap(&mut self, room_id: &Arc<str>) {
        loop {
            let Some(room) = self.rooms.get(room_id) else {
                return;
            };
            if !rules::over_offline_cap(room.offline_users, &self.config) {
                return;
            }
            let offline = room
                .users
                .iter()
                .filter_map(|(id, u)| Some((&**id, u.facts.offline_since()?)));
            match rules::offline_victim(offline).map(Arc::<str>::from) {
                Some(user) => self.remove_offline_user(room_id, &user),
                None => return,
            }
        }
    }

    fn remove_offline_user(&mut self, room_id: &Arc<str>, user_id: &Arc<str>) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(user) = room.users.get_mut(user_id) else {
            return;
        };
        user.retention_timer = None;
        room.offline_users -= 1;
        self.offline_total -= 1;
        if !rules::unlist(&mut user.facts) {
            room.users.remove(user_id);
            unlist(&mut self.user_listed, user_id, room_id);
        }
        publish(room, room.visible(), user_id, Event::Removed);
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
        // Rooms where others see the user online (not those where it is only invisible).
        let shown = |room: &Arc<str>| {
            self.rooms
                .get(room)
                .and_then(|r| r.users.get(user))
                .is_some_and(|u| u.facts.is_online())
        };
        let mut rooms: Vec<String> = self
            .user_rooms
            .get(user)
            .map(|r| {
                r.iter()
                    .filter(|r| shown(r))
                    .map(|r| r.to_string())
                    .collect()
            })
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// Each user's status across every room that lists it, in the order asked.
    pub fn users_status(&self, users: &[String]) -> Vec<UserStatus> {
        users
            .iter()
            .map(|user| {
                let listings = self
                    .user_listed
                    .get(user.as_str())
                    .into_iter()
                    .flatten()
                    .filter_map(|room| {
                        Some(&self.rooms.get(room)?.users.get(user.as_str())?.facts)
                    });
                rules::user_status(user, listings)
            })
            .collect()
    }

    /// Removes a user (all its sessions) from a room. True if it was listed.
    pub fn remove_room_user(&mut self, room_id: &str, user: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return false;
        };
        let Some((user_id, removed)) = room.users.remove_entry(user) else {
            return false;
        };
        if removed.retention_timer.is_some() {
            room.offline_users -= 1;
            self.offline_total -= 1;
        }
        let before = room.visible();
        for s in removed.facts.sessions.iter().chain(&removed.facts.hidden) {
            if let Some(s) = room.sessions.remove(s.id.as_str()) {
                self.tokens.remove(&s.token);
            }
        }
        room.hidden -= removed.facts.hidden.len();
        let room_key = room.id.clone();
        if removed.facts.is_listed() {
            publish(room, before, &user_id, Event::Removed);
        }
        unlist(&mut self.user_listed, &user_id, &room_key);
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
        let key = self.hold(room_id, session_token, as_user)?;
        let buffer = self.config.subscriber_buffer;
        let room = self.rooms.get_mut(&key.room).expect("made by hold");
        let rx = room.receiver(buffer);
        let snapshot = room.snapshot_message();
        Ok((key, snapshot, rx))
    }

    /// A subscriber's hold on a room (and on a session, whose grace starts when the last hold
    /// goes), without a snapshot or a receiver: for summary subscribers, which read the room
    /// through its summarizer.
    pub fn hold(
        &mut self,
        room_id: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<SubscriberKey, PresenceError> {
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
            s.goodbye_at = None;
        }
        Ok(SubscriberKey {
            room: room_key,
            session,
        })
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
                        let until = rules::earlier_grace(s.grace_until, now + grace);
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

/// `room` no longer lists `user`.
fn unlist(listed: &mut Map<Arc<str>, SmallVec<[Arc<str>; 1]>>, user: &str, room: &Arc<str>) {
    if let Some(rooms) = listed.get_mut(user) {
        rooms.retain(|r| r != room);
        if rooms.is_empty() {
            listed.remove(user);
        }
    }
}

/// Publishes one change of `user_id` in the room (built only if someone watches) that took the
/// room from `before` live sessions to what it has now.
fn publish(room: &mut Room, before: usize, user_id: &str, event: Event) {
    let occupancy = rules::occupancy(before, room.visible());
    room.publish(occupancy, |room, seq| {
        rules::message(
            &event,
            seq,
            user_id,
            room.users.get(user_id).map(|u| &u.facts),
        )
    });
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;
