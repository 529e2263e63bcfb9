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
    /// Notes Redis' epoch (made by the first server to connect): a key that is gone after a
    /// restart without data.
    pub(super) async fn read_epoch(&self) -> Option<String> {
        let key = format!("{}:epoch", self.inner.layout.shared());
        let mut conn = self.inner.conn.clone();
        let fresh = crate::server::token::SessionToken::generate().to_hex();
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(&fresh)
            .arg("NX")
            .query_async(&mut conn)
            .await;
        redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .ok()
            .flatten()
    }

    /// True if Redis lost its data since this server last looked (its epoch changed). Asks for
    /// up to two seconds while the command connection is still reconnecting.
    pub(super) async fn restarted_empty(&self) -> bool {
        let mut now = None;
        for _ in 0..40 {
            now = self.read_epoch().await;
            if now.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut known = super::lock(&self.inner.epoch);
        let restarted = now.is_some() && *known != now;
        if now.is_some() {
            *known = now;
        }
        restarted
    }

    /// Makes again every session this server's subscriptions hold, as the hub last saw it.
    pub(super) async fn reassert_held(&self) {
        use futures_util::StreamExt;
        futures_util::stream::iter(self.inner.held.all())
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
