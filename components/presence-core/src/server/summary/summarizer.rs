//! One room's summarizer: the room's list kept from one subscription, and what a summary shows
//! published at most once per window.

use crate::limits::MAX_SUMMARY_USERS;
use crate::room_view::RoomView;
use crate::server::store::Store;
use crate::server::subscription::SharedMessage;
use crate::server::Map;
use crate::wire::{RoomCounts, RoomMessage, RoomSummary, UserPresence};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a room's summarizer published last, shared by all its subscribers.
#[derive(Debug)]
pub(crate) struct SummaryState {
    room: Arc<str>,
    pub seq: u64,
    pub counts: RoomCounts,
    /// The first [`MAX_SUMMARY_USERS`] users in the room's order: the same `Arc` while they do
    /// not change, so subscribers compare by pointer first.
    pub first: Arc<Vec<UserPresence>>,
    /// Messages made from this state so far, by (`k`, with the list): each made once.
    frames: Mutex<Vec<(usize, Arc<SharedMessage>)>>,
}

impl SummaryState {
    /// The message for subscribers of `k` users: with the first `k` when `with_first`, else the
    /// counts alone (the same message for every `k`).
    pub fn frame(&self, k: usize, with_first: bool) -> Arc<SharedMessage> {
        let key = if with_first { k } else { 0 };
        let mut frames = lock(&self.frames);
        if let Some((_, frame)) = frames.iter().find(|(at, _)| *at == key) {
            return frame.clone();
        }
        let first = with_first.then(|| self.first_k(k).to_vec());
        let frame = Arc::new(SharedMessage::new(RoomMessage::Summary(RoomSummary::new(
            self.room.to_string(),
            self.seq,
            self.counts,
            first,
        ))));
        frames.push((key, frame.clone()));
        frame
    }

    /// The first `k` users (fewer if the room lists fewer).
    pub fn first_k(&self, k: usize) -> &[UserPresence] {
        &self.first[..k.min(self.first.len())]
    }
}

/// The room's list and who watches their own user, shared by the task and the subscribers.
#[derive(Debug, Default)]
struct Shared {
    view: RoomView,
    /// user id → its subscribers' channel (summary subscribers see their own user).
    me: Map<Arc<str>, watch::Sender<Option<UserPresence>>>,
    /// Users changed since the last publication, among those in `me`: their news.
    pending_me: Map<Arc<str>, Option<UserPresence>>,
}

/// One room's summarizer, alive while any summary subscription (or automatic feed) of the room
/// on this server holds it; its task ends when the last one lets go.
#[derive(Debug)]
pub(crate) struct Summarizer {
    room: Arc<str>,
    state: watch::Receiver<Option<Arc<SummaryState>>>,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Summarizer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Summarizer {
    /// The room summarized.
    pub fn room(&self) -> &Arc<str> {
        &self.room
    }

    /// What it publishes (`None` until the room's first list arrived).
    pub fn state(&self) -> watch::Receiver<Option<Arc<SummaryState>>> {
        self.state.clone()
    }

    /// A channel of `user` as it is listed now, then whenever it changes (at the window's end).
    pub fn me(&self, user: &str) -> watch::Receiver<Option<UserPresence>> {
        let mut shared = lock(&self.shared);
        if let Some(tx) = shared.me.get(user) {
            return tx.subscribe();
        }
        let now = shared.view.user(user).cloned();
        let (tx, rx) = watch::channel(now);
        shared.me.insert(Arc::from(user), tx);
        rx
    }

    /// A subscriber of `user`'s channel let go (its receiver already dropped).
    pub fn forget_me(&self, user: &str) {
        let mut shared = lock(&self.shared);
        if shared
            .me
            .get(user)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            shared.me.remove(user);
            shared.pending_me.remove(user);
        }
    }
}

/// The summarizers of this server's rooms.
#[derive(Debug)]
pub(crate) struct Summaries {
    rooms: Mutex<Map<Arc<str>, Weak<Summarizer>>>,
    window: Duration,
}

impl Summaries {
    pub fn new(window_ms: u64) -> Self {
        Summaries {
            rooms: Mutex::default(),
            window: Duration::from_millis(window_ms),
        }
    }

    /// `room`'s summarizer, started if nobody holds one. Must be called inside a tokio runtime.
    pub fn of(&self, store: &Arc<dyn Store>, room: &str) -> Arc<Summarizer> {
        let mut rooms = lock(&self.rooms);
        if let Some(summarizer) = rooms.get(room).and_then(Weak::upgrade) {
            return summarizer;
        }
        rooms.retain(|_, s| s.strong_count() > 0);
        let room: Arc<str> = Arc::from(room);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, state) = watch::channel(None);
        let task = tokio::spawn(run(
            store.clone(),
            room.clone(),
            shared.clone(),
            tx,
            self.window,
        ))
        .abort_handle();
        let summarizer = Arc::new(Summarizer {
            room: room.clone(),
            state,
            shared,
            task,
        });
        rooms.insert(room, Arc::downgrade(&summarizer));
        summarizer
    }

    /// How many rooms have a live summarizer (for tests).
    #[cfg(test)]
    pub fn live(&self) -> usize {
        lock(&self.rooms)
            .values()
            .filter(|s| s.strong_count() > 0)
            .count()
    }
}

/// The summarizer's task: follow the room, publish at most once per window.
async fn run(
    store: Arc<dyn Store>,
    room: Arc<str>,
    shared: Arc<Mutex<Shared>>,
    tx: watch::Sender<Option<Arc<SummaryState>>>,
    window: Duration,
) {
    let mut delay = Duration::from_millis(50);
    let mut subscription = loop {
        let subscribed = match store.room_token(&room) {
            Ok(token) => store.subscribe(&token, None, None).await,
            Err(e) => Err(e),
        };
        match subscribed {
            Ok(subscription) => break subscription,
            Err(_) => {
                // The store is unreachable (Redis down): try again, as resyncs do.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    };
    let mut due: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    // Publications in a row that had to wait for the window (a burst), and whether the next does.
    let (mut streak, mut delayed) = (0u32, false);
    loop {
        tokio::select! {
            message = subscription.next() => {
                take(&shared, message.message());
                if due.is_none() {
                    let now = Instant::now();
                    let window = window_for(window, tx.receiver_count(), streak);
                    (due, delayed) = match last {
                        Some(at) if at + window > now => (Some(at + window), true),
                        _ => (Some(now), false),
                    };
                }
            }
            _ = sleep_until(due), if due.is_some() => {
                publish(&shared, &tx, &room);
                last = Some(Instant::now());
                due = None;
                streak = if delayed { (streak + 1).min(16) } else { 0 };
            }
        }
    }
}

/// The window after `streak` publications in a row that each had to wait for it: the
/// configured one at first, doubling through a burst up to a bound that grows with the room
/// (2 ms per subscriber: 1 s from 500 subscribers on, at most 1 s). Each summary costs every
/// subscriber a write of its own, most of it kernel time: with 0.5 ms per subscriber, 1,000
/// clients joining one room in 4 s made the server write 13,400 times, with 2 ms 8,100 (its
/// own join costs a client about 4). A change after a quiet window goes out at once, and
/// resets it: only bursts wait longer, never a lone change.
fn window_for(base: Duration, subscribers: usize, streak: u32) -> Duration {
    let bound = Duration::from_millis(2 * subscribers as u64).min(Duration::from_secs(1));
    let grown = base.saturating_mul(1u32 << streak.min(16));
    base.max(grown.min(bound))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Applies one message to the room's list and notes the news of users watched by themselves.
fn take(shared: &Mutex<Shared>, message: &RoomMessage) {
    let mut shared = lock(shared);
    let shared = &mut *shared;
    match message {
        RoomMessage::Snapshot(_) => {
            shared.view.apply_in_order(message.clone());
            for user in shared.me.keys() {
                let now = shared.view.user(user).cloned();
                shared.pending_me.insert(user.clone(), now);
            }
        }
        RoomMessage::Joined { user, .. }
        | RoomMessage::Left { user, .. }
        | RoomMessage::Updated { user, .. } => {
            shared.view.apply_in_order(message.clone());
            // The user whole (the diff names one of its sessions), as the view now has it.
            if let Some((id, _)) = shared.me.get_key_value(user.user_id.as_str()) {
                let now = shared.view.user(id).cloned();
                shared.pending_me.insert(id.clone(), now);
            }
        }
        RoomMessage::Removed { user_id, .. } => {
            if let Some((id, _)) = shared.me.get_key_value(user_id.as_str()) {
                shared.pending_me.insert(id.clone(), None);
            }
            shared.view.apply_in_order(message.clone());
        }
        RoomMessage::Summary(_) | RoomMessage::Me { .. } => {}
    }
}

/// Publishes what a summary shows, if it changed, and each watched user's news.
fn publish(shared: &Mutex<Shared>, tx: &watch::Sender<Option<Arc<SummaryState>>>, room: &Arc<str>) {
    let mut shared = lock(shared);
    // Each watched user's news first: a subscriber woken by the summary finds its own entry
    // already current.
    let news = std::mem::take(&mut shared.pending_me);
    for (user, now) in news {
        if let Some(me) = shared.me.get(&user) {
            me.send_if_modified(|old| {
                if *old == now {
                    return false;
                }
                *old = now;
                true
            });
        }
    }
    let users = shared.view.users();
    let counts = RoomCounts::of(users);
    let first_now = &users[..users.len().min(MAX_SUMMARY_USERS)];
    let previous = tx.borrow().clone();
    let first = match &previous {
        Some(p) if p.first.as_slice() == first_now => p.first.clone(),
        _ => Arc::new(first_now.to_vec()),
    };
    let changed = previous
        .as_ref()
        .is_none_or(|p| p.counts != counts || !Arc::ptr_eq(&p.first, &first));
    if changed {
        tx.send_replace(Some(Arc::new(SummaryState {
            room: room.clone(),
            seq: shared.view.seq(),
            counts,
            first,
            frames: Mutex::default(),
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_through_a_burst_in_a_big_room_only_and_at_most_to_a_second() {
        let base = Duration::from_millis(100);
        let ms = Duration::from_millis;
        // Not in a burst: the configured window, whatever the room.
        assert_eq!(window_for(base, 10_000, 0), base);
        // A small room: never longer.
        assert_eq!(window_for(base, 10, 5), base);
        assert_eq!(window_for(base, 50, 5), base);
        // A bigger one: doubling, up to 2 ms a subscriber, and a second at most.
        assert_eq!(window_for(base, 150, 1), ms(200));
        assert_eq!(window_for(base, 150, 2), ms(300));
        assert_eq!(window_for(base, 150, 9), ms(300));
        assert_eq!(window_for(base, 1_000, 1), ms(200));
        assert_eq!(window_for(base, 1_000, 2), ms(400));
        assert_eq!(window_for(base, 1_000, 3), ms(800));
        assert_eq!(window_for(base, 1_000, 4), ms(1_000));
        assert_eq!(window_for(base, 1_000, 9), ms(1_000));
        assert_eq!(window_for(base, 10_000, 3), ms(800));
        assert_eq!(window_for(base, 10_000, 4), ms(1_000));
        assert_eq!(window_for(base, 1_000_000, 16), ms(1_000));
        assert_eq!(window_for(ms(2_000), 10_000, 3), ms(2_000));
    }
}
