//! The fast path of no-change heartbeats.
//!
//! A session this server has seen heartbeat is remembered (by token) as its last heartbeat left
//! it. A heartbeat that changes nothing and matches what is remembered is answered at once, and
//! its new deadline queued: every [`FLUSH_MS`] the queue goes to Redis in batches of
//! [`touch.lua`](touch.lua). A session the flush finds gone, changed or held by another token
//! is forgotten, so its next heartbeat takes the full path (and rejoins if it must). A heartbeat
//! of a session not remembered here goes to Redis at once, batched with the others that arrive
//! while a batch is in flight. Whatever changes something (a join, a name, away, state, a
//! leave) goes to Redis at once by the full path (`load.lua`, the rules, `commit.lua`).
//!
//! So a session's deadline in Redis lags its last heartbeat by one flush (every [`FLUSH_MS`];
//! longer while Redis is slow, which the margin below covers; deadlines are 14.5 s away at the
//! default interval), and a session ended elsewhere (another server's disconnect,
//! an expiry) can be told "still there" until a flush finds it gone; its next heartbeat then
//! rejoins it. While Redis is unreachable, and right after, nothing is answered from memory.

use super::{Inner, RedisPresence};
use crate::error::PresenceError;
use crate::wire::HeartbeatRequest;
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most touches in one script call.
const MAX_BATCH: usize = 256;

/// How often remembered heartbeats are written to Redis, in ms.
pub(crate) const FLUSH_MS: u64 = 250;

/// A heartbeat is answered from memory only if the deadline Redis has for its session is at
/// least this far away (ms): more than a flush takes even when Redis is slow (its response
/// timeout is 2 s), so the new one is written before any server could judge the session gone.
/// Heartbeats on time have 4.5 s to spare at the default interval (a 14.5 s deadline, see
/// [`crate::limits::expiry_after`]); one that comes later than that (or any, with a short
/// interval) goes to Redis at once.
const MARGIN_MS: u64 = 3_000;

/// A remembered session not heard from for this long (ms) is forgotten: longer than any
/// interval (at most 5 min), so only gone tabs are.
const FORGET_AFTER_MS: u64 = 10 * 60 * 1000;

/// Most sessions remembered; past it the oldest half is forgotten (they take the full path).
const MAX_KNOWN: usize = 200_000;

/// One no-change heartbeat to write.
#[derive(Clone)]
pub(crate) struct Touch {
    /// The session's hash.
    pub session_key: String,
    pub token: String,
    pub user: String,
    /// The name as stored.
    pub name: String,
    /// Active, away or idle, as the session hash's `away` field holds it
    /// ([`super::keys::status_mark`]).
    pub mark: &'static str,
    pub now: u64,
    pub expires_at: u64,
}

/// A touch and where its answer goes: true if the session was extended.
pub(crate) type Queued = (Touch, oneshot::Sender<Result<bool, PresenceError>>);

/// A session as its last heartbeat through this server left it.
struct Known {
    room: String,
    session: String,
    touch: Touch,
    /// The deadline Redis has (the last one written).
    written: u64,
}

impl Known {
    fn matches(&self, request: &HeartbeatRequest, touch: &Touch) -> bool {
        self.room == request.room
            && self.session == request.session
            && self.touch.user == touch.user
            && self.touch.name == touch.name
            && self.touch.mark == touch.mark
            && touch.expires_at >= self.touch.expires_at
            && self.written >= touch.now + MARGIN_MS
    }
}

/// The remembered sessions (by token) and the deadlines not yet written.
#[derive(Default)]
pub(crate) struct Remembered {
    known: Mutex<HashMap<String, Known>>,
    pending: Mutex<HashMap<String, Touch>>,
    /// Tokens forgotten lately (a leave), and when: a heartbeat that was in flight meanwhile
    /// must not put them back.
    forgotten: Mutex<HashMap<String, std::time::Instant>>,
    /// Bumped when everything is forgotten (Redis may have lost it all).
    generation: std::sync::atomic::AtomicU64,
}

/// How long a forgotten token is kept from being remembered again by a heartbeat that was in
/// flight when it was forgotten (longer than any request takes).
const FORGOTTEN_FOR: Duration = Duration::from_secs(10);

impl Remembered {
    /// Answers a no-change heartbeat from memory if it matches what is known: true if it did
    /// (its new deadline is queued for the next flush).
    pub fn answer(&self, request: &HeartbeatRequest, touch: &Touch) -> bool {
        let mut known = super::lock(&self.known);
        let Some(entry) = known.get_mut(&touch.token) else {
            return false;
        };
        if !entry.matches(request, touch) {
            return false;
        }
        entry.touch.now = touch.now;
        entry.touch.expires_at = touch.expires_at;
        drop(known);
        super::lock(&self.pending).insert(touch.token.clone(), touch.clone());
        true
    }

    /// What has been forgotten so far; a heartbeat notes it before it asks Redis.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Remembers a session that Redis has just confirmed live as `touch` says, unless it was
    /// forgotten since the heartbeat asked (`generation`: [`Remembered::generation`] then).
    pub fn remember(&self, room: &str, session: &str, touch: Touch, generation: u64) {
        if self.generation() != generation
            || super::lock(&self.forgotten)
                .get(&touch.token)
                .is_some_and(|at| at.elapsed() < FORGOTTEN_FOR)
        {
            return;
        }
        let mut known = super::lock(&self.known);
        if known.len() >= MAX_KNOWN {
            forget_oldest_half(&mut known);
        }
        known.insert(
            touch.token.clone(),
            Known {
                room: room.to_string(),
                session: session.to_string(),
                written: touch.expires_at,
                touch,
            },
        );
    }

    /// Notes deadlines a flush wrote.
    fn written(&self, touches: &[Touch]) {
        let mut known = super::lock(&self.known);
        for touch in touches {
            if let Some(entry) = known.get_mut(&touch.token) {
                entry.written = entry.written.max(touch.expires_at);
            }
        }
    }

    /// Forgets every session (Redis may have lost them all).
    pub fn forget_all(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        super::lock(&self.known).clear();
        super::lock(&self.pending).clear();
    }

    /// Forgets a session (it left, or Redis no longer has it as remembered).
    pub fn forget(&self, token: &str) {
        super::lock(&self.forgotten).insert(token.to_string(), std::time::Instant::now());
        super::lock(&self.known).remove(token);
        super::lock(&self.pending).remove(token);
    }

    fn take_pending(&self) -> Vec<Touch> {
        std::mem::take(&mut *super::lock(&self.pending))
            .into_values()
            .collect()
    }

    /// Puts back what a failed flush could not write (unless a newer heartbeat queued more).
    fn put_back(&self, touches: Vec<Touch>) {
        let mut pending = super::lock(&self.pending);
        for touch in touches {
            pending.entry(touch.token.clone()).or_insert(touch);
        }
    }

    fn forget_idle(&self, now: u64) {
        super::lock(&self.known).retain(|_, k| k.touch.now + FORGET_AFTER_MS > now);
    }

    fn prune_forgotten(&self) {
        super::lock(&self.forgotten).retain(|_, at| at.elapsed() < FORGOTTEN_FOR);
    }
}

fn forget_oldest_half(known: &mut HashMap<String, Known>) {
    let mut times: Vec<u64> = known.values().map(|k| k.touch.now).collect();
    times.sort_unstable();
    let cut = times[times.len() / 2];
    known.retain(|_, k| k.touch.now > cut);
}

/// Sends batches while touches come; ends when the store is dropped (the queue closes).
pub(crate) async fn run_batches(weak: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(presence) = RedisPresence::upgrade(&weak) else {
            return;
        };
        let touches: Vec<&Touch> = batch.iter().map(|(touch, _)| touch).collect();
        let answers = presence.touch_batch(&touches).await;
        drop(presence);
        for (i, (_, reply)) in batch.into_iter().enumerate() {
            let answer = match &answers {
                Ok(extended) => Ok(extended.get(i).is_some_and(|&e| e == 1)),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(answer);
        }
    }
}

/// Writes the remembered heartbeats and shares request rates ([`super::rates`]) every
/// [`FLUSH_MS`]; ends when the store is dropped.
pub(crate) async fn run_flushes(weak: Weak<Inner>) {
    let mut ticks = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(FLUSH_MS)).await;
        let Some(presence) = RedisPresence::upgrade(&weak) else {
            return;
        };
        let _ = presence.flush_remembered().await;
        presence.inner.remembered.prune_forgotten();
        let _ = presence.share_rates().await;
        ticks += 1;
        // With slot groups, a Cluster shard can lose its data while pub/sub (on another node)
        // stays up: each group's epoch is read every second (see `reassert::check_groups`).
        let every = super::reassert::EPOCH_CHECK_MS / FLUSH_MS;
        if presence.inner.layout.groups() > 1
            && ticks.is_multiple_of(every)
            && !presence
                .inner
                .checking
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let presence = presence.clone();
            tokio::spawn(async move {
                /// Lets the next check start, however this one ends.
                struct Done<'a>(&'a std::sync::atomic::AtomicBool);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.store(false, std::sync::atomic::Ordering::Release);
                    }
                }
                let _done = Done(&presence.inner.checking);
                presence.check_groups().await;
            });
        }
        if ticks.is_multiple_of(240) {
            presence.inner.remembered.forget_idle(presence.now_ms());
        }
    }
}

impl RedisPresence {
    /// One call of `touch.lua` for `touches`: per touch, 1 if extended.
    /// Per touch, 1 if extended: one call of `touch.lua` per slot the sessions are in, side
    /// by side.
    pub(super) async fn touch_batch(&self, touches: &[&Touch]) -> Result<Vec<i64>, PresenceError> {
        let groups = super::slots::by_slot(
            &self.inner.layout,
            touches.iter().map(|t| t.session_key.as_str()),
        );
        let sent = groups.iter().map(|indexes| {
            let mut invocation = self.inner.touch.prepare_invoke();
            for &i in indexes {
                let touch = touches[i];
                invocation
                    .key(&touch.session_key)
                    .arg(&touch.token)
                    .arg(&touch.user)
                    .arg(&touch.name)
                    .arg(touch.mark)
                    .arg(touch.now)
                    .arg(touch.expires_at);
            }
            let mut conn = self.inner.conn.clone();
            async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
        });
        let answers = futures_util::future::join_all(sent).await;
        let mut out = vec![0; touches.len()];
        for (indexes, answer) in groups.iter().zip(answers) {
            for (&i, extended) in indexes.iter().zip(self.answered(answer)?) {
                out[i] = extended;
            }
        }
        Ok(out)
    }

    /// Writes every deadline answered from memory since the last flush; forgets the sessions
    /// Redis no longer has as remembered. Fails (keeping what it could not write) if Redis
    /// does not answer.
    pub(super) async fn flush_remembered(&self) -> Result<(), PresenceError> {
        let remembered = &self.inner.remembered;
        let pending = remembered.take_pending();
        let mut chunks = pending.chunks(MAX_BATCH);
        while let Some(chunk) = chunks.next() {
            let touches: Vec<&Touch> = chunk.iter().collect();
            match self.touch_batch(&touches).await {
                Ok(extended) => {
                    for (touch, done) in chunk.iter().zip(extended) {
                        if done != 1 {
                            remembered.forget(&touch.token);
                        }
                    }
                    remembered.written(chunk);
                }
                Err(e) => {
                    remembered.put_back(chunk.to_vec());
                    for rest in chunks {
                        remembered.put_back(rest.to_vec());
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(token: &str, now: u64) -> Touch {
        Touch {
            session_key: "k".into(),
            token: token.into(),
            user: "ann".into(),
            name: "Ann".into(),
            mark: "0",
            now,
            expires_at: now + crate::limits::expiry_after(10_000),
        }
    }

    fn request() -> HeartbeatRequest {
        HeartbeatRequest::new("r1", "ann", "s1", "Ann")
    }

    #[test]
    fn a_heartbeat_on_time_at_the_default_interval_is_answered_from_memory() {
        let remembered = Remembered::default();
        remembered.remember("r1", "s1", touch("t1", 0), remembered.generation());
        // 10 s later, Redis' deadline (14.5 s) is 4.5 s away: more than a slow flush takes.
        assert!(remembered.answer(&request(), &touch("t1", 10_000)));
        // A late one (a retried heartbeat after a blip) asks Redis.
        assert!(!remembered.answer(&request(), &touch("t1", 12_000)));
    }

    #[test]
    fn a_leave_while_a_heartbeat_was_in_flight_is_not_undone() {
        let remembered = Remembered::default();
        // Remembered and answered from memory as usual.
        remembered.remember("r1", "s1", touch("t1", 0), remembered.generation());
        assert!(remembered.answer(&request(), &touch("t1", 1_000)));
        // A heartbeat asks Redis; meanwhile the session leaves; then the heartbeat's answer
        // comes back: it must not vouch for the session again.
        let asked_at = remembered.generation();
        remembered.forget("t1");
        remembered.remember("r1", "s1", touch("t1", 2_000), asked_at);
        assert!(!remembered.answer(&request(), &touch("t1", 3_000)));
        // Everything forgotten (Redis came back) while another was in flight: the same.
        remembered.remember("r1", "s1", touch("t2", 0), remembered.generation());
        let asked_at = remembered.generation();
        remembered.forget_all();
        remembered.remember("r1", "s1", touch("t2", 2_000), asked_at);
        assert!(!remembered.answer(&request(), &touch("t2", 3_000)));
        // A heartbeat that asked afterwards is remembered again.
        remembered.remember("r1", "s1", touch("t2", 4_000), remembered.generation());
        assert!(remembered.answer(&request(), &touch("t2", 5_000)));
    }
}
