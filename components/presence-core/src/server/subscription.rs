//! A live view of one room: its snapshot, then every change, resynced if it falls behind.

use super::presence::Presence;
use super::registry::SubscriberKey;
use crate::wire::RoomMessage;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast::{self, error::RecvError};

/// A message shared by every subscriber of a room, serialized to JSON at most once.
#[derive(Debug)]
pub struct SharedMessage {
    message: RoomMessage,
    json: OnceLock<String>,
}

impl SharedMessage {
    pub(crate) fn new(message: RoomMessage) -> Self {
        SharedMessage {
            message,
            json: OnceLock::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> &RoomMessage {
        &self.message
    }

    /// The message as JSON (computed by the first subscriber that asks, then shared).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            serde_json::to_string(&self.message).expect("presence messages always serialize")
        })
    }
}

/// A subscription to one room, from [`Presence::subscribe`].
///
/// [`Subscription::next`] yields the snapshot first, then each change in `seq` order. A
/// subscriber that falls more than `subscriber_buffer` messages behind is not waited for: its
/// next message is a fresh snapshot. Dropping the subscription closes it; if it held a session,
/// that session gets the grace deadline.
#[derive(Debug)]
pub struct Subscription {
    presence: Presence,
    key: SubscriberKey,
    rx: broadcast::Receiver<Arc<SharedMessage>>,
    pending_snapshot: Option<Arc<SharedMessage>>,
    seq: u64,
}

impl Subscription {
    pub(crate) fn new(
        presence: Presence,
        key: SubscriberKey,
        snapshot: Arc<SharedMessage>,
        rx: broadcast::Receiver<Arc<SharedMessage>>,
    ) -> Self {
        Subscription {
            presence,
            key,
            rx,
            seq: snapshot.message().seq(),
            pending_snapshot: Some(snapshot),
        }
    }

    /// The room this subscription watches.
    pub fn room(&self) -> &str {
        &self.key.room
    }

    /// The next message: the snapshot first, then changes; a new snapshot after falling behind.
    pub async fn next(&mut self) -> Arc<SharedMessage> {
        if let Some(snapshot) = self.pending_snapshot.take() {
            return snapshot;
        }
        loop {
            match self.rx.recv().await {
                Ok(message) => {
                    let seq = message.message().seq();
                    if seq <= self.seq {
                        continue; // already covered by the snapshot
                    }
                    self.seq = seq;
                    return message;
                }
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                    let (snapshot, rx) = self.presence.resubscribe(&self.key.room);
                    self.rx = rx;
                    self.seq = snapshot.message().seq();
                    return snapshot;
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.presence.unsubscribe(&self.key);
    }
}
