//! Redis restarted empty: no blink.
//!
//! Every tab that is present keeps a subscription (its WebSocket) on some server. When a
//! server's pub/sub connection comes back and Redis' epoch key is gone or changed (Redis
//! restarted without its data, or was flushed), the server makes each session its subscriptions
//! hold again, with its token, user, name, away flag and state as the server last relayed them
//! (the hub's paint of the room), before it resyncs its watchers; and it resyncs them only
//! [`RESYNC_AFTER_RESTART`] later, so that the other servers have made their sessions again
//! too. Until then watchers keep the list they had. A watcher does not see a live user vanish,
//! provided every server notices the restart and makes its sessions again within that window
//! (a server cut off from Redis for longer, or one with very many sessions, may not).
//!
//! What comes back differs in one way: the order of the users online (by when they came back).
//! (An idle session comes back idle since when it was, as the hub last relayed it.)
//! Offline users' last-seen history comes back only if Redis persisted it (see the README).

use super::RedisPresence;
use crate::wire::HeartbeatRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long watchers keep their list after a restart, while every server makes its sessions
/// again. Servers notice the restart when their pub/sub reconnects, which it tries at least once
/// a second (1.25 s with jitter), and make their sessions again [`CONCURRENCY`] at a time.
pub(crate) const RESYNC_AFTER_RESTART: Duration = Duration::from_millis(3_000);

/// How often a store with slot groups reads each group's epoch (see [`RedisPresence::check_groups`]).
pub(crate) const EPOCH_CHECK_MS: u64 = 1_000;

/// Sessions made again at once (each is one or two script calls).
const CONCURRENCY: usize = 32;

/// The interval a session made again gets until its tab's next heartbeat sets its own: the
/// default interval of a hidden tab, so that none expires before it heartbeats (a tab whose
/// socket closes meanwhile is ended at once, see below).
const REASSERT_INTERVAL_MS: u64 = 60_000;

/// A session some of this server's subscriptions hold.
struct Holding {
    room: Arc<str>,
    session: String,
    /// How many subscriptions hold it.
    count: usize,
}

/// The sessions this server's subscriptions hold, by token.
#[derive(Default)]
pub(crate) struct Held(Mutex<HashMap<String, Holding>>);

impl Held {
    pub fn add(&self, token: &str, room: &Arc<str>, session: &str) {
        super::lock(&self.0)
            .entry(token.to_string())
            .or_insert_with(|| Holding {
                room: room.clone(),
                session: session.to_string(),
                count: 0,
            })
            .count += 1;
    }

    pub fn remove(&self, token: &str) {
        let mut held = super::lock(&self.0);
        if let Some(entry) = held.get_mut(token) {
            entry.count -= 1;
            if entry.count == 0 {
                held.remove(token);
            }
        }
    }

    pub fn contains(&self, token: &str) -> bool {
        super::lock(&self.0).contains_key(token)
    }

    fn all(&self) -> Vec<(String, Arc<str>, String)> {
        super::lock(&self.0)
            .iter()
            .map(|(token, h)| (token.clone(), h.room.clone(), h.session.clone()))
            .collect()
    }
}

impl RedisPresence {
    /// Notes Redis' epochs (made by the first server to connect): keys that are gone after a
    /// restart without data. One for the store; with slot groups, one per group (in its slot,
    /// so that a Cluster shard that lost its data is told apart). `None` where Redis did not
    /// answer.
    pub(super) async fn read_epochs(&self) -> Vec<Option<String>> {
        let layout = &self.inner.layout;
        let keys: Vec<String> = (0..layout.groups()).map(|g| layout.epoch(g)).collect();
        let fresh = crate::server::token::SessionToken::generate().to_hex();
        let mut commands = Vec::new();
        for key in &keys {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(&fresh).arg("NX");
            let mut get = redis::cmd("GET");
            get.arg(key);
            commands.push((key.clone(), set));
            commands.push((key.clone(), get));
        }
        match self.query_each::<Option<String>>(commands).await {
            Ok(answers) => answers.into_iter().skip(1).step_by(2).collect(),
            Err(_) => vec![None; keys.len()],
        }
    }

    /// The slot groups whose data Redis lost since this server last looked (their epoch
    /// changed): every group after a restart of one Redis, some after a Cluster shard's. Asks
    /// for up to two seconds while the command connection is still reconnecting (`patient`).
    pub(super) async fn restarted_groups(&self, patient: bool) -> Vec<u32> {
        let mut now = Vec::new();
        for _ in 0..if patient { 40 } else { 1 } {
            now = self.read_epochs().await;
            if now.iter().all(Option::is_some) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut known = super::lock(&self.inner.epoch);
        known.resize(now.len(), None);
        let mut changed = Vec::new();
        for (g, (was, is)) in known.iter_mut().zip(now).enumerate() {
            // (A first reading after one that failed counts too: at worst one needless
            // re-assert.)
            if is.is_some() && *was != is {
                changed.push(g as u32);
                *was = is;
            }
        }
        changed
    }

    /// With slot groups: whether a group lost its data (a Cluster shard restarted empty, while
    /// pub/sub, on another node, stayed up). Its rooms' watchers hold their lists while this
    /// server makes its sessions there again, and resync [`RESYNC_AFTER_RESTART`] later. Every
    /// [`EPOCH_CHECK_MS`] from the flush task, and before a room with a gap is resynced (the
    /// other servers' sessions made again may be what shows the gap). Returns the groups that
    /// lost their data.
    pub(super) async fn check_groups(&self) -> Vec<u32> {
        // One restart handled at a time, here or on a pub/sub reconnect (see `hub::run`): the
        // one that does not see the change waits until the other's watchers may resync.
        let _one = self.inner.restart.lock().await;
        let changed = self.restarted_groups(false).await;
        if changed.is_empty() {
            return changed;
        }
        let layout = self.inner.layout.clone();
        let lost = |room: &str| changed.contains(&layout.group_of(room));
        self.inner.remembered.forget_all();
        let rooms = self.inner.hub.resync_where(|room| lost(room));
        self.reassert_where(|room| lost(room)).await;
        tokio::time::sleep(RESYNC_AFTER_RESTART).await;
        for room in rooms {
            super::hub::spawn_resync(self, room);
        }
        changed
    }

    /// Makes again every session this server's subscriptions hold in the rooms `lost` says,
    /// as the hub last saw it.
    pub(super) async fn reassert_where(&self, lost: impl Fn(&str) -> bool) {
        use futures_util::StreamExt;
        let held: Vec<_> = self
            .inner
            .held
            .all()
            .into_iter()
            .filter(|(_, room, _)| lost(room))
            .collect();
        futures_util::stream::iter(held)
            .for_each_concurrent(CONCURRENCY, |(token, room, session)| async move {
                self.reassert(token, room, session).await;
            })
            .await;
    }

    async fn reassert(&self, token: String, room: Arc<str>, session: String) {
        let Some(painted) = self.inner.hub.last_paint(&room) else {
            return; // nothing known here: the tab's next heartbeat makes it again
        };
        let Some((user, found)) = painted.users.iter().find_map(|u| {
            u.sessions
                .iter()
                .find(|s| s.session_id == session)
                .map(|s| (u.user_id.clone(), s.clone()))
        }) else {
            return;
        };
        let mut request = HeartbeatRequest::new(&*room, user, session, found.name)
            .away(found.status == crate::wire::SessionStatus::Away)
            .idle_for_ms(
                found
                    .idle_since
                    .map(|since| self.now_ms().saturating_sub(since)),
            )
            .interval_ms(REASSERT_INTERVAL_MS)
            .session_token(token.clone());
        request.state = found.state;
        request.kind = found.kind;
        if self.heartbeat(&request).await.is_ok() && !self.inner.held.contains(&token) {
            // Its socket closed while it was being made again (the release found nothing to
            // release in the empty Redis): end it now rather than leave a ghost.
            let _ = self.disconnect(&token, None).await;
        }
    }
}
