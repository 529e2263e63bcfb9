//! A live view of one room: its snapshot, then every change, resynced if it falls behind.

use crate::wire::RoomMessage;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

/// A message shared by every subscriber of a room, serialized to JSON at most once.
#[derive(Debug)]
pub struct SharedMessage {
    message: RoomMessage,
    json: OnceLock<String>,
    /// What a transport made of it, by [`Encoding`].
    encoded: [OnceLock<Encoded>; 2],
}

/// Which of a message's shared encodings (see [`SharedMessage::encoded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// One that a receiver can read whatever it received before.
    Alone,
    /// One that continues a stream of the room's changes (it may rely on the change before it).
    Stream,
}

/// A message as a transport sends it (`leptos_presence` keeps its compressed WebSocket frames
/// here), made once and then shared by every subscriber it goes to.
#[derive(Debug)]
#[non_exhaustive]
pub struct Encoded {
    /// The bytes to send.
    pub bytes: Box<[u8]>,
    /// The message a receiver must have received just before, for these bytes to read right
    /// (`None`: nothing).
    pub after: Option<Weak<SharedMessage>>,
}

impl Encoded {
    /// Bytes that rely on `after` having been received just before them (`None`: nothing).
    pub fn new(bytes: impl Into<Box<[u8]>>, after: Option<Weak<SharedMessage>>) -> Self {
        Encoded {
            bytes: bytes.into(),
            after,
        }
    }
}

impl SharedMessage {
    /// A message to share (the engine makes them; a transport's tests may too).
    pub fn new(message: RoomMessage) -> Self {
        SharedMessage {
            message,
            json: OnceLock::new(),
            encoded: Default::default(),
        }
    }

    /// A message that arrived as JSON (from another server): kept as it came, not re-encoded.
    #[cfg(feature = "redis")]
    pub(crate) fn from_json(json: String) -> Result<Self, serde_json::Error> {
        let message = serde_json::from_str(&json)?;
        Ok(SharedMessage {
            message,
            json: OnceLock::from(json),
            encoded: Default::default(),
        })
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

    /// The message as a transport sends it: `make` (given the JSON) runs for the first caller
    /// of each [`Encoding`]; every later caller gets what it made. So a server compresses a
    /// change once, not once per subscriber.
    pub fn encoded(&self, encoding: Encoding, make: impl FnOnce(&str) -> Encoded) -> &Encoded {
        self.encoded[encoding as usize].get_or_init(|| make(self.json()))
    }
}

/// A fresh snapshot and the changes after it.
pub(crate) type Resubscribed = (Arc<SharedMessage>, broadcast::Receiver<Arc<SharedMessage>>);

/// What a subscription holds in its store: the room it watches, how it catches up after
/// falling behind, and what closing it releases. Each store implements it.
pub(crate) trait Source: Send + Sync + std::fmt::Debug {
    fn room(&self) -> &str;
    /// A fresh snapshot and receiver for a subscriber that fell behind.
    fn resubscribe(&self) -> Pin<Box<dyn Future<Output = Resubscribed> + Send + '_>>;
    /// Closes the watch (and, for a subscription that holds a session, starts its grace).
    fn release(&self);
}

/// A subscriber's hold on a room, and on the session it names (if any), without messages: what
/// a summary subscriber keeps in the store (it reads the room through the room's summarizer).
/// Dropping it releases the hold, as dropping a [`Subscription`] does.
#[derive(Debug)]
pub(crate) struct Hold {
    source: Box<dyn Source>,
}

impl Hold {
    pub(crate) fn new(source: Box<dyn Source>) -> Self {
        Hold { source }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.source.release();
    }
}

/// A subscription to one room, from [`super::Presence::subscribe`].
///
/// [`Subscription::next`] yields the snapshot first, then each change in `seq` order. A
/// subscriber that falls more than `subscriber_buffer` messages behind is not waited for: its
/// next message is a fresh snapshot. Dropping the subscription closes it; if it held a session,
/// that session gets the grace deadline.
#[derive(Debug)]
pub struct Subscription {
    source: Box<dyn Source>,
    rx: broadcast::Receiver<Arc<SharedMessage>>,
    pending_snapshot: Option<Arc<SharedMessage>>,
    seq: u64,
    /// It fell behind and has not been resynced yet: the next [`Subscription::next`] brings a
    /// fresh snapshot (kept here so a resync cut short, or found by `try_next`, is not lost).
    behind: bool,
}

impl Subscription {
    pub(crate) fn new(
        source: Box<dyn Source>,
        snapshot: Arc<SharedMessage>,
        rx: broadcast::Receiver<Arc<SharedMessage>>,
    ) -> Self {
        Subscription {
            source,
            rx,
            seq: snapshot.message().seq(),
            pending_snapshot: Some(snapshot),
            behind: false,
        }
    }

    /// The room this subscription watches.
    pub fn room(&self) -> &str {
        self.source.room()
    }

    /// The next message: the snapshot first, then changes; a new snapshot after falling behind.
    /// Cancel-safe: dropped before it is ready, it loses nothing.
    pub async fn next(&mut self) -> Arc<SharedMessage> {
        if let Some(snapshot) = self.pending_snapshot.take() {
            return snapshot;
        }
        loop {
            if !self.behind {
                match self.rx.recv().await {
                    Ok(message) => match self.accept(message) {
                        Some(message) => return message,
                        None => continue,
                    },
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => self.behind = true,
                }
            }
            let (snapshot, rx) = self.source.resubscribe().await;
            self.behind = false;
            self.rx = rx;
            self.seq = snapshot.message().seq();
            return snapshot;
        }
    }

    /// The next message if it is already here, without waiting: for a transport that sends
    /// what has piled up in one write. `None` when nothing is waiting, and also when the
    /// subscriber fell behind (then [`Subscription::next`] brings the fresh snapshot).
    pub fn try_next(&mut self) -> Option<Arc<SharedMessage>> {
        if self.behind {
            return None;
        }
        if let Some(snapshot) = self.pending_snapshot.take() {
            return Some(snapshot);
        }
        loop {
            match self.rx.try_recv() {
                Ok(message) => {
                    if let Some(message) = self.accept(message) {
                        return Some(message);
                    }
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Lagged(_)) | Err(TryRecvError::Closed) => {
                    self.behind = true;
                    return None;
                }
            }
        }
    }

    /// A message from the room's channel, unless the snapshot already covers it.
    fn accept(&mut self, message: Arc<SharedMessage>) -> Option<Arc<SharedMessage>> {
        let seq = message.message().seq();
        if matches!(message.message(), RoomMessage::Snapshot(_)) {
            // A resync (another server's store came back, or this hub missed messages): it
            // replaces everything, whatever its seq.
            self.seq = seq;
            return Some(message);
        }
        if seq <= self.seq {
            return None; // already covered by the snapshot
        }
        self.seq = seq;
        Some(message)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.source.release();
    }
}

/// One change in some room, as seen by [`super::Presence::changes`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RoomChange {
    /// The room that changed.
    pub room: Arc<str>,
    /// The change (`joined`, `left`, `updated` or `removed`; never a snapshot).
    pub message: Arc<SharedMessage>,
    /// `Some` when this change made the room occupied (its first live session joined) or vacated
    /// (its last live session ended).
    pub occupancy: Option<Occupancy>,
}

/// A room's first live session came, or its last one went (see [`RoomChange::occupancy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Occupancy {
    /// Nobody was present; now someone is.
    Occupied,
    /// Someone was present; now nobody is.
    Vacated,
}

/// Every change in every room, for server-side code (on join / on leave hooks, audit logs,
/// occupancy counters), from [`super::Presence::changes`].
///
/// It never holds anyone back: a reader that falls more than the buffer behind skips ahead, and
/// [`Changes::missed`] counts what it skipped.
#[derive(Debug)]
pub struct Changes {
    rx: broadcast::Receiver<RoomChange>,
    missed: u64,
}

impl Changes {
    pub(crate) fn new(rx: broadcast::Receiver<RoomChange>) -> Self {
        Changes { rx, missed: 0 }
    }

    /// The next change, or `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<RoomChange> {
        loop {
            match self.rx.recv().await {
                Ok(change) => return Some(change),
                Err(RecvError::Lagged(n)) => self.missed += n,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Changes skipped because this reader fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// The buffer of [`Changes`]: how far a server-side reader may fall behind before it skips.
pub(crate) const CHANGES_BUFFER: usize = 4096;
