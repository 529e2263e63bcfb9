//! One room's users and sessions, and how they are shown.

use super::deadlines::Timer;
use crate::server::rate::Bucket;
use crate::server::rules::{self, UserFacts};
use crate::server::subscription::{Occupancy, RoomChange, SharedMessage};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::wire::{RoomMessage, RoomSnapshot};
use std::sync::Arc;
use tokio::sync::broadcast;

pub(crate) use crate::server::Map;

/// One tab of one user: its liveness. What others see of it is in its user's
/// [`UserFacts::sessions`].
#[derive(Debug)]
pub(crate) struct Session {
    pub user: Arc<str>,
    pub token: SessionToken,
    /// Deadline from heartbeats: last heartbeat + [`crate::limits::expiry_after`] its interval.
    pub expires_at: u64,
    /// Time of this session's latest heartbeat (or state update).
    pub last_heartbeat: u64,
    /// Earlier deadline set when its last subscription closed or its page said it was going;
    /// cleared by a heartbeat or resubscribe.
    pub grace_until: Option<u64>,
    /// When its page said it was going (see [`rules::goodbye_deadline`]), unless taken back.
    pub goodbye_at: Option<u64>,
    /// Heartbeats and updates this session may still send right now.
    pub bucket: Bucket,
    /// Open subscriptions tied to this session.
    pub subscriptions: u32,
    /// The live queue entry for this session's deadline.
    pub timer: Option<Timer>,
}

impl Session {
    /// When the session ends if nothing else happens.
    pub fn deadline(&self) -> u64 {
        rules::session_deadline(self.expires_at, self.grace_until)
    }
}

/// One user of a room: what the rules know of it, and its retention timer.
#[derive(Debug)]
pub(crate) struct User {
    pub facts: UserFacts,
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
    /// How many of `sessions` are invisible.
    pub hidden: usize,
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
            hidden: 0,
            subscribers: 0,
            channel: None,
            all: all.clone(),
            snapshot_cache: None,
        }
    }

    /// Live sessions others see.
    pub fn visible(&self) -> usize {
        self.sessions.len() - self.hidden
    }

    /// Nothing listed and nobody watching: the room can be dropped.
    pub fn is_idle(&self) -> bool {
        self.users.is_empty() && self.subscribers == 0
    }

    /// Records one change and, if anyone is subscribed (to this room, or to every room's
    /// changes), builds its message with `make` (given the room and the change's seq) and sends
    /// it. Unwatched rooms build nothing.
    pub fn publish(
        &mut self,
        occupancy: Option<Occupancy>,
        make: impl FnOnce(&Room, u64) -> RoomMessage,
    ) {
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
                occupancy,
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
        rules::snapshot(
            &self.id,
            self.seq,
            self.users.iter().map(|(id, u)| (&**id, &u.facts)),
        )
    }
}
