//! One room's users and sessions, and how they are shown.

use super::deadlines::Timer;
use crate::room_view::room_order;
use crate::server::rate::Bucket;
use crate::server::subscription::{RoomChange, SharedMessage};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::wire::{RoomMessage, RoomSnapshot, SessionPresence, SessionStatus, UserPresence};
use serde_json::Value;
use smallvec::SmallVec;
use std::sync::Arc;
use tokio::sync::broadcast;

pub(crate) use crate::server::Map;

/// One tab of one user.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: Arc<str>,
    pub name: String,
    /// Boxed: most sessions have none, and the box keeps the map entry small.
    pub state: Option<Box<Value>>,
    pub away: bool,
    pub token: SessionToken,
    /// Deadline from heartbeats: last heartbeat + 2.5 × interval.
    pub expires_at: u64,
    /// Time of this session's latest heartbeat (or state update).
    pub last_heartbeat: u64,
    /// Earlier deadline set when its last subscription closed; cleared by a heartbeat or resubscribe.
    pub grace_until: Option<u64>,
    /// Heartbeats and updates this session may still send right now.
    pub bucket: Bucket,
    /// Open subscriptions tied to this session.
    pub subscriptions: u32,
    /// The live queue entry for this session's deadline.
    pub timer: Option<Timer>,
    pub joined_at: u64,
    pub joined_seq: u64,
}

impl Session {
    /// When the session ends if nothing else happens.
    pub fn deadline(&self) -> u64 {
        self.grace_until
            .map_or(self.expires_at, |g| g.min(self.expires_at))
    }
}

/// One user of a room.
#[derive(Debug)]
pub(crate) struct User {
    pub name: String,
    pub online_since: u64,
    /// `None` while online.
    pub last_seen: Option<u64>,
    /// Latest heartbeat of the user's sessions that have ended (folded in as each ends), so
    /// the heartbeat path never touches the user.
    pub last_active: u64,
    /// Live session ids, in join order.
    /// Usually one: kept inline.
    pub sessions: SmallVec<[Arc<str>; 1]>,
    /// The live queue entry for the end of this (offline) user's retention.
    pub retention_timer: Option<Timer>,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub id: Arc<str>,
    /// This room's token, signed once when the room is created.
    pub token: Arc<str>,
    /// Number of changes so far; the `seq` of the latest message.
    pub seq: u64,
    pub users: Map<Arc<str>, User>,
    pub sessions: Map<Arc<str>, Session>,
    pub offline_users: usize,
    pub subscribers: usize,
    /// Created on first subscribe, so rooms nobody watches cost no buffer.
    channel: Option<broadcast::Sender<Arc<SharedMessage>>>,
    /// Every room's changes, for [`crate::server::Presence::changes`] readers (if there are any).
    all: broadcast::Sender<RoomChange>,
    /// The snapshot at the current `seq`, built (and serialized) once for every subscriber that
    /// arrives before the next change: a reconnect storm costs one snapshot, not one per client.
    snapshot_cache: Option<Arc<SharedMessage>>,
}

impl Room {
    pub fn new(id: Arc<str>, key: &RoomTokenKey, all: &broadcast::Sender<RoomChange>) -> Self {
        Room {
            token: Arc::from(key.sign(&id)),
            id,
            seq: 0,
            users: Map::default(),
            sessions: Map::default(),
            offline_users: 0,
            subscribers: 0,
            channel: None,
            all: all.clone(),
            snapshot_cache: None,
        }
    }

    /// Nothing listed and nobody watching: the room can be dropped.
    pub fn is_idle(&self) -> bool {
        self.users.is_empty() && self.subscribers == 0
    }

    /// Records one change and, if anyone is subscribed (to this room, or to every room's
    /// changes), builds its message with `make` (given the room and the change's seq) and sends
    /// it. Unwatched rooms build nothing.
    pub fn publish(&mut self, make: impl FnOnce(&Room, u64) -> RoomMessage) {
        self.seq += 1;
        self.snapshot_cache = None;
        let local = self.channel.as_ref().filter(|tx| tx.receiver_count() > 0);
        let global = self.all.receiver_count() > 0;
        if local.is_none() && !global {
            return;
        }
        let message = Arc::new(SharedMessage::new(make(self, self.seq)));
        // Errors only mean the last receiver went away meanwhile.
        if let Some(tx) = local {
            let _ = tx.send(message.clone());
        }
        if global {
            let _ = self.all.send(RoomChange {
                room: self.id.clone(),
                message,
            });
        }
    }

    /// A receiver for messages after the current `seq`, creating the channel if needed.
    pub fn receiver(&mut self, buffer: usize) -> broadcast::Receiver<Arc<SharedMessage>> {
        self.channel
            .get_or_insert_with(|| broadcast::channel(buffer.max(1)).0)
            .subscribe()
    }

    pub fn user_presence(&self, user_id: &str) -> Option<UserPresence> {
        let user = self.users.get(user_id)?;
        let sessions: Vec<SessionPresence> = user
            .sessions
            .iter()
            .filter_map(|sid| {
                let s = self.sessions.get(sid)?;
                Some(SessionPresence {
                    session_id: sid.to_string(),
                    name: s.name.clone(),
                    status: if s.away {
                        SessionStatus::Away
                    } else {
                        SessionStatus::Active
                    },
                    state: s.state.as_deref().cloned(),
                    joined_at: s.joined_at,
                    joined_seq: s.joined_seq,
                })
            })
            .collect();
        Some(UserPresence {
            user_id: user_id.to_string(),
            name: user.name.clone(),
            online: !sessions.is_empty(),
            away: !sessions.is_empty() && sessions.iter().all(|s| s.status == SessionStatus::Away),
            online_since: user.online_since,
            last_seen: user.last_seen,
            sessions,
        })
    }

    /// The snapshot as a shareable message: the same one for everyone at this `seq`.
    pub fn snapshot_message(&mut self) -> Arc<SharedMessage> {
        if let Some(cached) = &self.snapshot_cache {
            return cached.clone();
        }
        let message = Arc::new(SharedMessage::new(RoomMessage::Snapshot(self.snapshot())));
        self.snapshot_cache = Some(message.clone());
        message
    }

    pub fn snapshot(&self) -> RoomSnapshot {
        let mut users: Vec<UserPresence> = self
            .users
            .keys()
            .filter_map(|id| self.user_presence(id))
            .collect();
        users.sort_by(room_order);
        RoomSnapshot {
            room: self.id.to_string(),
            seq: self.seq,
            users,
        }
    }
}
