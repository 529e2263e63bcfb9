//! This server's relay from Redis pub/sub to its local subscribers.
//!
//! One pub/sub connection per server listens to every room's channel (a pattern subscription) and
//! the wake channel and the forget channel. A room's messages go to a local broadcast channel only while someone here
//! watches that room, and only in `seq` order: a gap (a lost message, or Redis restarted) makes
//! the hub fetch a snapshot and send that instead, holding later messages until it lands. After a
//! reconnect every watched room is resynced the same way.

use super::{Inner, RedisPresence};
use crate::room_view::{Applied, RoomView};
use crate::server::subscription::{RoomChange, SharedMessage};
use crate::wire::{RoomMessage, RoomSnapshot};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// A room watched from this server.
struct Watched {
    tx: broadcast::Sender<Arc<SharedMessage>>,
    watchers: usize,
    /// The `seq` of the last message sent (or of the snapshot that replaced them).
    last: Option<u64>,
    /// The snapshot at `last`, shared by subscribers that arrive before the next change.
    snapshot: Option<Arc<SharedMessage>>,
    /// Set while a resync is in flight: messages that arrive meanwhile wait here.
    held: Option<Vec<Arc<SharedMessage>>>,
    /// The room for server-side rendering, read without a round trip to Redis.
    paint: Option<Paint>,
}

/// Most messages kept for a [`Paint`] between reads; past it the paint waits for a snapshot.
const PAINT_BACKLOG: usize = 1_024;

/// A watched room's last snapshot and the messages sent since, applied when a page is rendered
/// (not on every change: most changes are never painted).
struct Paint {
    view: RoomView,
    since: Vec<Arc<SharedMessage>>,
}

impl Paint {
    /// Applies the messages waiting to the view; false if they do not follow it (a gap).
    fn catch_up(&mut self) -> bool {
        std::mem::take(&mut self.since)
            .into_iter()
            .all(|message| self.view.apply(message.message().clone()) != Applied::NeedsSnapshot)
    }

    fn new(snapshot: &SharedMessage) -> Option<Paint> {
        match snapshot.message() {
            RoomMessage::Snapshot(s) => Some(Paint {
                view: RoomView::from_snapshot(s.clone()),
                since: Vec::new(),
            }),
            _ => None,
        }
    }
}

/// Adds a message sent in order to the paint; past the backlog, applies what waited first.
fn paint_after(paint: &mut Option<Paint>, message: &Arc<SharedMessage>) {
    if let Some(p) = paint {
        if p.since.len() >= PAINT_BACKLOG && !p.catch_up() {
            *paint = None;
            return;
        }
        p.since.push(message.clone());
    }
}

pub(crate) struct Hub {
    buffer: usize,
    rooms: Mutex<HashMap<Arc<str>, Watched>>,
}

impl Hub {
    pub fn new(buffer: usize) -> Self {
        Hub {
            buffer: buffer.max(1),
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Watched>> {
        super::lock(&self.rooms)
    }

    /// A watched room as of the last message this server relayed, with no round trip to Redis
    /// (for server-side rendering). `None` if nobody here watches it, or a resync is in flight.
    pub fn paint(&self, room: &str) -> Option<RoomSnapshot> {
        self.painted(room, false)
    }

    /// The room as this server last relayed it, even while a resync is in flight (what it
    /// showed before Redis restarted).
    pub fn last_paint(&self, room: &str) -> Option<RoomSnapshot> {
        self.painted(room, true)
    }

    fn painted(&self, room: &str, even_if_held: bool) -> Option<RoomSnapshot> {
        let mut rooms = self.rooms();
        let watched = rooms.get_mut(room)?;
        if watched.held.is_some() && !even_if_held {
            return None;
        }
        let paint = watched.paint.as_mut()?;
        if !paint.catch_up() {
            watched.paint = None;
            return None;
        }
        Some(RoomSnapshot::new(
            paint.view.room(),
            paint.view.seq(),
            paint.view.users().to_vec(),
        ))
    }

    /// Starts (or adds) a watch on `room`: a receiver for what follows, and the cached snapshot
    /// if it is still current.
    pub fn watch(
        &self,
        room: &Arc<str>,
    ) -> (
        broadcast::Receiver<Arc<SharedMessage>>,
        Option<Arc<SharedMessage>>,
    ) {
        let buffer = self.buffer;
        let mut rooms = self.rooms();
        let watched = rooms.entry(room.clone()).or_insert_with(|| Watched {
            tx: broadcast::channel(buffer).0,
            watchers: 0,
            last: None,
            snapshot: None,
            held: None,
            paint: None,
        });
        watched.watchers += 1;
        let cached = watched.snapshot.clone().filter(|_| watched.held.is_none());
        (watched.tx.subscribe(), cached)
    }

    /// The current snapshot of a watched room, if this server has one (no resync in flight).
    pub fn cached(&self, room: &str) -> Option<Arc<SharedMessage>> {
        let rooms = self.rooms();
        let watched = rooms.get(room)?;
        watched.snapshot.clone().filter(|_| watched.held.is_none())
    }

    /// Another receiver for an existing watch (a subscriber that fell behind).
    pub fn receiver(&self, room: &Arc<str>) -> broadcast::Receiver<Arc<SharedMessage>> {
        let buffer = self.buffer;
        self.rooms()
            .entry(room.clone())
            .or_insert_with(|| Watched {
                tx: broadcast::channel(buffer).0,
                watchers: 1,
                last: None,
                snapshot: None,
                held: None,
                paint: None,
            })
            .tx
            .subscribe()
    }

    pub fn unwatch(&self, room: &str) {
        let mut rooms = self.rooms();
        if let Some(watched) = rooms.get_mut(room) {
            watched.watchers = watched.watchers.saturating_sub(1);
            if watched.watchers == 0 {
                rooms.remove(room);
            }
        }
    }

    /// A snapshot fetched for a new subscriber: it becomes the starting point if nothing newer
    /// has been sent.
    pub fn offer_snapshot(&self, room: &str, snapshot: &Arc<SharedMessage>) {
        let seq = snapshot.message().seq();
        if let Some(watched) = self.rooms().get_mut(room) {
            if watched.held.is_none() && watched.last.is_none_or(|last| seq >= last) {
                watched.last = Some(seq);
                watched.snapshot = Some(snapshot.clone());
                watched.paint = Paint::new(snapshot);
            }
        }
    }

    fn is_watched(&self, room: &str) -> bool {
        self.rooms().contains_key(room)
    }

    /// A message from Redis for a watched room. True if the room needs a resync.
    fn deliver(&self, room: &str, message: Arc<SharedMessage>) -> bool {
        let mut rooms = self.rooms();
        let Some(watched) = rooms.get_mut(room) else {
            return false;
        };
        if let Some(held) = &mut watched.held {
            held.push(message);
            return false;
        }
        let seq = message.message().seq();
        match watched.last {
            Some(last) if seq <= last => false, // already in the snapshot
            Some(last) if seq != last + 1 => {
                watched.held = Some(vec![message]);
                true
            }
            _ => {
                watched.last = Some(seq);
                watched.snapshot = None;
                paint_after(&mut watched.paint, &message);
                let _ = watched.tx.send(message);
                false
            }
        }
    }

    /// Marks every watched room as resyncing (after a reconnect); returns those that were not
    /// already. A room whose resync was in flight keeps it, but forgets what it held: those
    /// messages came before the reconnect, and if Redis restarted meanwhile their `seq`s are
    /// from another count, one of them perhaps equal to a new message's.
    fn resync_all(&self) -> Vec<Arc<str>> {
        let mut rooms = self.rooms();
        let mut out = Vec::new();
        for (room, watched) in rooms.iter_mut() {
            if watched.held.is_none() {
                out.push(room.clone());
            }
            watched.held = Some(Vec::new());
        }
        out
    }

    /// Marks the watched rooms `pick` says as resyncing (a slot group lost its data), and
    /// returns them all: a resync already in flight may land before the sessions are made
    /// again, so each gets another after.
    pub(super) fn resync_where(&self, pick: impl Fn(&str) -> bool) -> Vec<Arc<str>> {
        let mut rooms = self.rooms();
        let mut out = Vec::new();
        for (room, watched) in rooms.iter_mut().filter(|(room, _)| pick(room)) {
            out.push(room.clone());
            watched.held = Some(Vec::new());
        }
        out
    }

    /// Gives up on messages held past a gap that snapshots do not close (they cannot be
    /// placed): the room carries on from its last snapshot.
    fn drop_held(&self, room: &str) {
        if let Some(watched) = self.rooms().get_mut(room) {
            watched.held = None;
        }
    }

    /// A resync landed: send the snapshot, then what was held after it. True if the held
    /// messages still leave a gap (another resync is needed).
    fn finish_resync(&self, room: &str, snapshot: Arc<SharedMessage>) -> bool {
        let mut rooms = self.rooms();
        let Some(watched) = rooms.get_mut(room) else {
            return false;
        };
        let mut held = watched.held.take().unwrap_or_default();
        // Held in arrival order, which is not `seq` order once a gap opened: a message that
        // cannot be placed yet may be followed by ones that fill the gap before it.
        held.sort_by_key(|message| message.message().seq());
        let mut last = snapshot.message().seq();
        watched.snapshot = Some(snapshot.clone());
        watched.paint = Paint::new(&snapshot);
        let _ = watched.tx.send(snapshot);
        let mut held = held.into_iter();
        while let Some(message) = held.next() {
            let seq = message.message().seq();
            if seq <= last {
                continue;
            }
            if seq != last + 1 {
                // Still a gap: keep this and everything after it for the next snapshot.
                watched.last = Some(last);
                watched.held = Some(std::iter::once(message).chain(held).collect());
                return true;
            }
            last = seq;
            watched.snapshot = None;
            paint_after(&mut watched.paint, &message);
            let _ = watched.tx.send(message);
        }
        watched.last = Some(last);
        false
    }
}

/// Resyncs a room from a snapshot. If messages held meanwhile still leave a gap after it, tries
/// again a few times (the gap may be a message that is about to be covered by a newer snapshot);
/// then drops what it held and trusts the next message to show any gap that remains.
pub(super) fn spawn_resync(presence: &RedisPresence, room: Arc<str>) {
    const ATTEMPTS: usize = 3;
    let presence = presence.clone();
    tokio::spawn(async move {
        for _ in 0..ATTEMPTS {
            let snapshot = presence.snapshot_patiently(&room).await;
            if !presence.inner.hub.finish_resync(&room, snapshot) {
                return;
            }
        }
        presence.inner.hub.drop_held(&room);
    });
}

/// The hub's task: (re)connect with backoff, subscribe, resync, relay. `ready` is notified
/// once the first subscription is in place.
pub(crate) async fn run(engine: Weak<Inner>, stop: Arc<Notify>, ready: Arc<Notify>) {
    let mut delay = Duration::from_millis(50);
    let mut first = true;
    loop {
        let Some(presence) = RedisPresence::upgrade(&engine) else {
            return;
        };
        let events = presence.inner.layout.events();
        let wake = presence.inner.layout.wake();
        let forget = presence.inner.layout.forget();
        let connected = async {
            let mut pubsub = presence.inner.client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{events}*")).await?;
            pubsub.subscribe(&wake).await?;
            pubsub.subscribe(&forget).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(Duration::from_secs(2), connected).await;
        let Ok(Ok(pubsub)) = pubsub else {
            drop(presence);
            tokio::select! {
                _ = tokio::time::sleep(jittered(delay)) => {}
                _ = stop.notified() => return,
            }
            // At most a second between tries: after Redis restarts empty, every server must
            // notice within the re-assert window (see `reassert`).
            delay = (delay * 2).min(Duration::from_secs(1));
            continue;
        };
        delay = Duration::from_millis(50);
        if first {
            first = false;
            ready.notify_one();
        } else {
            // Messages may have been missed while disconnected (or Redis restarted and its
            // sequence numbers with it): every watched room starts again from a snapshot, and
            // no session is vouched for from memory until Redis has seen it again.
            presence.inner.remembered.forget_all();
            let rooms = presence.inner.hub.resync_all();
            let presence = presence.clone();
            tokio::spawn(async move {
                // (One restart handled at a time: see `reassert::check_groups`.)
                let one = presence.inner.restart.lock().await;
                let lost = presence.restarted_groups(true).await;
                if !lost.is_empty() {
                    // Redis lost its data: make this server's sessions again, and give the
                    // other servers time to do the same before watchers see a snapshot.
                    let layout = presence.inner.layout.clone();
                    presence
                        .reassert_where(|room| lost.contains(&layout.group_of(room)))
                        .await;
                    tokio::time::sleep(super::reassert::RESYNC_AFTER_RESTART).await;
                }
                drop(one);
                for room in rooms {
                    spawn_resync(&presence, room);
                }
            });
        }
        // Deadlines may have passed, or Redis may have restarted empty.
        presence.inner.wake.notify_one();
        let hub_wake = presence.inner.wake.clone();
        let weak = Arc::downgrade(&presence.inner);
        drop(presence);
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                _ = stop.notified() => return,
            };
            let Some(message) = message else {
                break; // connection lost: reconnect
            };
            let channel = message.get_channel_name();
            if channel == wake {
                hub_wake.notify_one();
                continue;
            }
            if channel == forget {
                // A session got a grace (a goodbye, a closed socket) on some server: its next
                // heartbeat must reach Redis, which takes the grace back in time; an answer
                // from memory would be written only by the next flush.
                if let (Some(presence), Ok(token)) = (
                    RedisPresence::upgrade(&weak),
                    std::str::from_utf8(message.get_payload_bytes()),
                ) {
                    presence.inner.remembered.forget(token);
                }
                continue;
            }
            let Some(room) = channel.strip_prefix(&events) else {
                continue;
            };
            let Some(presence) = RedisPresence::upgrade(&weak) else {
                return;
            };
            let watched = presence.inner.hub.is_watched(room);
            let global = presence.inner.all.receiver_count() > 0;
            if !watched && !global {
                continue; // nobody here wants this room's messages: not even parsed
            }
            let Ok(payload) = String::from_utf8(message.get_payload_bytes().to_vec()) else {
                continue;
            };
            let (occupancy, json) = super::keys::read_occupancy(payload);
            let Ok(message) = SharedMessage::from_json(json) else {
                continue;
            };
            let message = Arc::new(message);
            if global {
                let _ = presence.inner.all.send(RoomChange {
                    room: Arc::from(room),
                    message: message.clone(),
                    occupancy,
                });
            }
            if watched && presence.inner.hub.deliver(room, message) {
                let room: Arc<str> = Arc::from(room);
                if presence.inner.layout.groups() == 1 {
                    spawn_resync(&presence, room);
                } else {
                    // The gap may be another server's sessions made again after the room's
                    // group lost its data, before this server noticed: if so, it is handled
                    // as such (the room resyncs once this server's sessions are back too).
                    let presence = presence.clone();
                    tokio::spawn(async move {
                        let lost = presence.check_groups().await;
                        if !lost.contains(&presence.inner.layout.group_of(&room)) {
                            spawn_resync(&presence, room);
                        }
                    });
                }
            }
        }
    }
}

/// `delay` ± 25%, so servers that lost Redis together do not all return at the same instant.
fn jittered(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.75 + f64::from(byte[0]) / 255.0 * 0.5;
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{SessionPresence, UserPresence};

    fn user(id: &str, since: u64) -> UserPresence {
        let mut user = UserPresence::new(id, id, vec![SessionPresence::new(format!("s-{id}"), id)]);
        user.online_since = since;
        user
    }

    fn shared(message: RoomMessage) -> Arc<SharedMessage> {
        Arc::new(SharedMessage::new(message))
    }

    fn joined(seq: u64, id: &str) -> Arc<SharedMessage> {
        let user = user(id, seq);
        shared(RoomMessage::Joined {
            seq,
            session_id: format!("s-{id}"),
            session: user.sessions[0].clone(),
            user: user.head(),
        })
    }

    fn names(snapshot: &RoomSnapshot) -> Vec<&str> {
        snapshot.users.iter().map(|u| u.user_id.as_str()).collect()
    }

    #[test]
    fn a_watched_room_paints_its_snapshot_and_every_message_relayed_since() {
        let hub = Hub::new(16);
        let room: Arc<str> = Arc::from("r");
        assert!(hub.paint("r").is_none(), "not watched");
        let (_rx, _) = hub.watch(&room);
        assert!(hub.paint("r").is_none(), "no snapshot yet");
        hub.offer_snapshot(
            "r",
            &shared(RoomMessage::Snapshot(RoomSnapshot::new(
                "r",
                1,
                vec![user("a", 1)],
            ))),
        );
        assert!(!hub.deliver("r", joined(2, "b")));
        assert!(!hub.deliver("r", joined(3, "c")));
        let painted = hub.paint("r").unwrap();
        assert_eq!((painted.seq, names(&painted)), (3, vec!["a", "b", "c"]));
        // A gap: no paint until the resync lands, then the snapshot and what was held after it.
        assert!(hub.deliver("r", joined(5, "e")));
        assert!(hub.paint("r").is_none());
        let resync = RoomSnapshot::new("r", 4, vec![user("a", 1), user("d", 4)]);
        assert!(!hub.finish_resync("r", shared(RoomMessage::Snapshot(resync))));
        let painted = hub.paint("r").unwrap();
        assert_eq!((painted.seq, names(&painted)), (5, vec!["a", "d", "e"]));
        // Unwatched: gone.
        hub.unwatch("r");
        assert!(hub.paint("r").is_none());
    }

    #[test]
    fn a_busy_room_nobody_renders_keeps_its_paint() {
        let hub = Hub::new(16);
        let room: Arc<str> = Arc::from("r");
        let (_rx, _) = hub.watch(&room);
        hub.offer_snapshot(
            "r",
            &shared(RoomMessage::Snapshot(RoomSnapshot::new("r", 1, vec![]))),
        );
        let n = PAINT_BACKLOG as u64 * 2 + 3;
        for seq in 2..=n + 1 {
            assert!(!hub.deliver("r", joined(seq, &format!("u{seq}"))));
        }
        let painted = hub.paint("r").expect("still painted");
        assert_eq!((painted.seq, painted.users.len() as u64), (n + 1, n));
    }

    #[test]
    fn a_reconnect_forgets_what_a_resync_in_flight_held_from_before_it() {
        let (hub, mut rx) = watched_from(3);
        // A gap (seq 5 after 3): a resync starts, and waits for Redis, which is gone...
        assert!(hub.deliver("r", joined(5, "old")));
        // ...and comes back empty: counting starts again. Only rooms not already resyncing
        // start another resync.
        assert!(hub.resync_all().is_empty());
        for seq in 1..=6 {
            assert!(!hub.deliver("r", joined(seq, &format!("new{seq}"))));
        }
        // The resync in flight lands with a snapshot of the new count: what follows it is the
        // new count's, never the old seq 5.
        assert!(!hub.finish_resync("r", snapshot(2)));
        assert_eq!(sent(&mut rx), vec![2, 3, 4, 5, 6]);
        let painted = hub.paint("r").unwrap();
        assert!(painted.users.iter().any(|u| u.user_id == "new5"));
        assert!(!painted.users.iter().any(|u| u.user_id == "old"));
    }

    /// An empty room snapshot at `seq`.
    fn snapshot(seq: u64) -> Arc<SharedMessage> {
        shared(RoomMessage::Snapshot(RoomSnapshot::new("r", seq, vec![])))
    }

    /// A hub watching room "r" from an empty snapshot at `seq`, and what it sends.
    fn watched_from(seq: u64) -> (Hub, broadcast::Receiver<Arc<SharedMessage>>) {
        let hub = Hub::new(16);
        let (rx, _) = hub.watch(&Arc::from("r"));
        hub.offer_snapshot("r", &snapshot(seq));
        (hub, rx)
    }

    fn removed(seq: u64, id: &str) -> Arc<SharedMessage> {
        shared(RoomMessage::Removed {
            seq,
            user_id: id.into(),
        })
    }

    fn sent(rx: &mut broadcast::Receiver<Arc<SharedMessage>>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| m.message().seq())
            .collect()
    }

    #[test]
    fn messages_held_behind_a_gap_a_snapshot_cannot_close_are_sent_in_order_not_lost() {
        let (hub, mut rx) = watched_from(1);
        // A message that can never be placed (seq 4; nothing ever brings 2 and 3 before it)...
        assert!(hub.deliver("r", removed(4, "nobody")));
        // ...then, while the resync is in flight, the room's real next change.
        assert!(!hub.deliver("r", joined(2, "b")));
        // The snapshot was read before that change: it is sent, then the change after it, and
        // only the unplaceable message is kept for another try.
        assert!(hub.finish_resync("r", snapshot(1)));
        assert_eq!(sent(&mut rx), vec![1, 2]);
        // The next try finds the same gap; the hub gives up on it and carries on from seq 2.
        assert!(hub.finish_resync("r", snapshot(2)));
        assert_eq!(sent(&mut rx), vec![2]);
        hub.drop_held("r");
        assert!(!hub.deliver("r", joined(3, "c")));
        assert_eq!(sent(&mut rx), vec![3]);
        let painted = hub.paint("r").unwrap();
        assert_eq!(painted.seq, 3);
    }

    #[test]
    fn everything_after_a_gap_that_remains_is_kept_for_the_next_snapshot() {
        let (hub, mut rx) = watched_from(1);
        assert!(hub.deliver("r", joined(4, "d")));
        assert!(!hub.deliver("r", joined(5, "e")));
        assert!(!hub.deliver("r", joined(6, "f")));
        // The snapshot is behind the gap (seq 2): 4, 5 and 6 all wait for the next one.
        assert!(hub.finish_resync("r", snapshot(2)));
        assert_eq!(sent(&mut rx), vec![2]);
        assert!(!hub.finish_resync("r", snapshot(3)));
        assert_eq!(sent(&mut rx), vec![3, 4, 5, 6]);
    }
}
