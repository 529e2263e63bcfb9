//! The in-memory store (the embedded default): a registry behind a mutex, and one scheduler task
//! that sleeps until the earliest deadline.

mod deadlines;
pub(crate) mod registry;
mod room;

use super::{ready, Answer};
use crate::error::{Field, PresenceError};
use crate::server::clock::{sleep_or_wake, Clock, SystemClock};
use crate::server::config::PresenceConfig;
use crate::server::rate::KeyedLimiter;
use crate::server::subscription::{
    Changes, Hold, Resubscribed, SharedMessage, Source, Subscription,
};
use crate::server::token::RoomTokenKey;
use crate::validate;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, RoomSnapshot, UserStatus};
use registry::{Registry, SubscriberKey};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// What [`MemoryPresence::heartbeat_ack`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatAck {
    /// True when this heartbeat created the session.
    pub joined: bool,
    /// When the session expires without another heartbeat (ms since the Unix epoch).
    pub expires_at: u64,
}

/// A presence engine. Cheap to clone; all clones share one registry and one scheduler.
///
/// Every method is synchronous and short (a lock, a few hash lookups); none waits on I/O.
/// Expiry needs no calls: a task started by [`MemoryPresence::start`] sleeps until the earliest
/// deadline, ends what is due, and sleeps again. Nothing scans all sessions.
#[derive(Clone)]
pub struct MemoryPresence {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    addresses: Mutex<KeyedLimiter<IpAddr>>,
    /// What the engine was started with (the registry keeps its own copy of the rules' part).
    config: PresenceConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    room_key: RoomTokenKey,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the scheduler see that the engine is gone and stop.
        self.wake.notify_one();
    }
}

impl std::fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPresence").finish_non_exhaustive()
    }
}

impl MemoryPresence {
    /// Starts an engine on the system clock. Must be called inside a tokio runtime.
    pub fn start(config: PresenceConfig) -> Self {
        Self::start_with_clock(config, SystemClock::default())
    }

    /// Starts an engine on the given clock (a [`crate::server::ManualClock`] in tests).
    /// Must be called inside a tokio runtime.
    pub fn start_with_clock(config: PresenceConfig, clock: impl Clock) -> Self {
        let room_key = match &config.room_token_secret {
            Some(secret) => RoomTokenKey::new(secret),
            None => RoomTokenKey::random(),
        };
        let inner = Arc::new(Inner {
            addresses: Mutex::new(KeyedLimiter::new(
                config.address_rate,
                config.max_tracked_addresses,
            )),
            registry: Mutex::new(Registry::new(config.clone(), room_key.clone())),
            config,
            clock: Arc::new(clock),
            wake: Arc::new(Notify::new()),
            room_key,
        });
        tokio::spawn(run_scheduler(Arc::downgrade(&inner), inner.wake.clone()));
        MemoryPresence { inner }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-written in a way that
        // matters more than stopping presence for everyone, so carry on.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the registry at the current time, and wakes the scheduler if `f` queued a
    /// deadline earlier than any before.
    fn with_registry<R>(&self, f: impl FnOnce(&mut Registry, u64) -> R) -> R {
        let now = self.inner.clock.now_ms();
        let mut registry = self.lock();
        let result = f(&mut registry, now);
        registry.compact_queue_if_stale();
        if registry.queue.take_head_moved_earlier() {
            self.inner.wake.notify_one();
        }
        result
    }

    /// Counts one request from a client address against `address_rate` (an IPv6 address by its
    /// /64: see [`crate::server::limit_key`]). The HTTP layer calls it for heartbeats, updates and lists;
    /// the engine cannot see addresses itself.
    pub fn check_address(&self, address: IpAddr) -> Result<(), PresenceError> {
        let now = self.inner.clock.now_ms();
        self.inner
            .addresses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(&crate::server::limit_key(address), now)
    }

    /// The engine's current time (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Joins a room or keeps a session alive. The first heartbeat of a session (no token) creates
    /// it and returns its token; later ones must carry that token. A heartbeat that changes
    /// nothing but the deadline notifies nobody.
    pub fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, PresenceError> {
        let outcome = self.with_registry(|r, now| r.heartbeat(request, now))?;
        Ok(HeartbeatResponse {
            user_id: request.user.clone(),
            session_token: outcome.token.to_hex(),
            room_token: outcome.room_token.to_string(),
            joined: outcome.joined,
            interval_ms: outcome.interval_ms,
            expires_at: outcome.expires_at,
        })
    }

    /// [`MemoryPresence::heartbeat`] without building the response strings: whether this heartbeat
    /// joined, and the deadline. For servers that answer heartbeats in their own format (and
    /// for measuring the engine alone).
    pub fn heartbeat_ack(&self, request: &HeartbeatRequest) -> Result<HeartbeatAck, PresenceError> {
        let outcome = self.with_registry(|r, now| r.heartbeat(request, now))?;
        Ok(HeartbeatAck {
            joined: outcome.joined,
            expires_at: outcome.expires_at,
        })
    }

    /// Replaces a session's app-defined state (`null` clears it). One `Updated` if it changed.
    pub fn update_state(&self, session_token: &str, state: Value) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.update_state(session_token, state, None, now))
    }

    /// [`MemoryPresence::update_state`] on behalf of an authenticated `user`: refused with `Forbidden`
    /// (and nothing changes) if the session is someone else's.
    pub fn update_state_as(
        &self,
        user: &str,
        session_token: &str,
        state: Value,
    ) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.update_state(session_token, state, Some(user), now))
    }

    /// Marks a session away (tab hidden) or active. One `Updated` if it changed.
    pub fn set_away(&self, session_token: &str, away: bool) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.set_away(session_token, away, now))
    }

    /// Ends a session now.
    pub fn disconnect(&self, session_token: &str) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.disconnect(session_token, None, now))
    }

    /// [`MemoryPresence::disconnect`] on behalf of an authenticated `user`: refused with `Forbidden`
    /// if the session is someone else's.
    pub fn disconnect_as(&self, user: &str, session_token: &str) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.disconnect(session_token, Some(user), now))
    }

    /// The session's page is going (it unloads, or its component unmounts): the session ends
    /// after [`PresenceConfig::leave_grace_ms`] unless it heartbeats again first; with
    /// `as_user`, only if it is that user's.
    pub fn going(&self, session_token: &str, as_user: Option<&str>) -> Result<(), PresenceError> {
        self.with_registry(|r, now| r.going(session_token, as_user, now))
    }

    /// The room a room token grants, and its snapshot.
    pub fn list(&self, room_token: &str) -> Result<RoomSnapshot, PresenceError> {
        let shared = self.list_shared(room_token)?;
        Ok(snapshot_of(&shared))
    }

    /// [`MemoryPresence::list`] as the message every reader of this room version shares (built
    /// and serialized once per version: a crowd of readers costs one snapshot).
    pub fn list_shared(&self, room_token: &str) -> Result<Arc<SharedMessage>, PresenceError> {
        let room = self.inner.room_key.verify(room_token)?;
        Ok(self.lock().snapshot_shared(room))
    }

    /// A room's snapshot, without a token: for trusted server-side code (SSR, admin).
    pub fn list_room(&self, room: &str) -> RoomSnapshot {
        snapshot_of(&self.list_room_shared(room))
    }

    /// [`MemoryPresence::list_room`] as a shared message.
    pub fn list_room_shared(&self, room: &str) -> Arc<SharedMessage> {
        self.lock().snapshot_shared(room)
    }

    /// The rooms where `user` is online, sorted.
    pub fn list_user(&self, user: &str) -> Vec<String> {
        self.lock().list_user(user)
    }

    /// Removes a user and its sessions from a room (subscribers get `Removed`). True if listed.
    pub fn remove_room_user(&self, room: &str, user: &str) -> bool {
        self.with_registry(|r, _| r.remove_room_user(room, user))
    }

    /// Removes everyone from a room. True if anyone was listed.
    pub fn remove_room(&self, room: &str) -> bool {
        self.with_registry(|r, _| r.remove_room(room))
    }

    /// The room token for `room`, for trusted server-side code that lets a page watch a room
    /// before it joins.
    pub fn room_token(&self, room: &str) -> Result<String, PresenceError> {
        validate::id(Field::Room, room)?;
        Ok(self.inner.room_key.sign(room))
    }

    /// Subscribes to the room a room token grants. With the token of a session in that room, the
    /// subscription also holds the session: when the last such subscription closes, the session
    /// ends after `subscription_grace_ms` unless it heartbeats or resubscribes first.
    pub fn subscribe(
        &self,
        room_token: &str,
        session_token: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        self.subscribe_inner(room_token, session_token, None)
    }

    /// [`MemoryPresence::subscribe`] on behalf of an authenticated `user`: a session token, if given,
    /// must be that user's.
    pub fn subscribe_as(
        &self,
        user: &str,
        room_token: &str,
        session_token: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        self.subscribe_inner(room_token, session_token, Some(user))
    }

    fn subscribe_inner(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        let room = self.inner.room_key.verify(room_token)?;
        let (key, snapshot, rx) =
            self.with_registry(|r, _| r.subscribe(room, session_token, as_user))?;
        let hold = MemoryHold {
            presence: self.clone(),
            key,
        };
        Ok(Subscription::new(Box::new(hold), snapshot, rx))
    }

    /// A subscriber's hold without messages (for summary subscribers).
    pub(crate) fn hold(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<Hold, PresenceError> {
        let room = self.inner.room_key.verify(room_token)?;
        let key = self.with_registry(|r, _| r.hold(room, session_token, as_user))?;
        Ok(Hold::new(Box::new(MemoryHold {
            presence: self.clone(),
            key,
        })))
    }

    /// Every change in every room, for server-side code; see [`crate::server::Presence::changes`].
    pub fn changes(&self) -> Changes {
        Changes::new(self.lock().changes())
    }

    /// A weak handle to the engine's state, to check that it is freed when the last clone goes.
    #[cfg(test)]
    pub(crate) fn downgrade_for_tests(&self) -> std::sync::Weak<dyn std::any::Any + Send + Sync> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        weak
    }

    /// Entries in the deadline queue (live and replaced): for tests and metrics.
    pub fn queued_deadlines(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The snapshot inside a snapshot message.
pub(crate) fn snapshot_of(message: &SharedMessage) -> RoomSnapshot {
    match message.message() {
        crate::wire::RoomMessage::Snapshot(s) => s.clone(),
        other => unreachable!("a snapshot message holds a snapshot, not {other:?}"),
    }
}

/// The scheduler: end what is due, then sleep until the next deadline or until an operation
/// queues an earlier one. If it wakes much later than the deadline it slept for, the process was
/// stopped meanwhile (a laptop asleep, a stopped container, a long GC or VM stall): every heartbeat
/// sent during the pause is still queued, so it holds expiry for `stall_grace_ms` to let them in
/// rather than ending everyone at once (see [`crate::server::stall`]).
async fn run_scheduler(engine: Weak<Inner>, wake: Arc<Notify>) {
    let mut stall = crate::server::stall::StallGuard::default();
    loop {
        let sleep = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            let now = inner.clock.now_ms();
            let next = {
                let mut registry = inner
                    .registry
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let grace = registry.config().stall_grace_ms;
                let late_by = stall
                    .planned()
                    .map_or(0, |planned| inner.clock.lateness(planned, now));
                let next = match stall.woke(now, late_by, grace) {
                    Some(held_until) => {
                        stall.holding_until(held_until);
                        Some(held_until)
                    }
                    None => {
                        registry.expire_due(now);
                        registry.compact_queue_if_stale();
                        let next = registry.next_deadline();
                        stall.sleeping_until(next);
                        next
                    }
                };
                // Our own pushes during expiry are already accounted for by `next`.
                registry.queue.take_head_moved_earlier();
                next
            };
            next.map(|at| inner.clock.sleep_until(at))
        };
        sleep_or_wake(sleep, &wake).await;
    }
}

/// A subscription's hold on the registry: its subscriber entry (and session, if it holds one).
#[derive(Debug)]
struct MemoryHold {
    presence: MemoryPresence,
    key: SubscriberKey,
}

impl Source for MemoryHold {
    fn room(&self) -> &str {
        &self.key.room
    }

    fn resubscribe(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resubscribed> + Send + '_>> {
        let resubscribed = self
            .presence
            .with_registry(|r, _| r.resubscribe(&self.key.room));
        Box::pin(std::future::ready(resubscribed))
    }

    fn release(&self) {
        self.presence
            .with_registry(|r, now| r.unsubscribe(&self.key, now));
    }
}

impl super::Store for MemoryPresence {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn config(&self) -> &PresenceConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> u64 {
        MemoryPresence::now_ms(self)
    }

    fn check_address(&self, address: IpAddr) -> Result<(), PresenceError> {
        MemoryPresence::check_address(self, address)
    }

    fn heartbeat<'a>(&'a self, request: &'a HeartbeatRequest) -> Answer<'a, HeartbeatResponse> {
        ready(MemoryPresence::heartbeat(self, request))
    }

    fn update_state<'a>(
        &'a self,
        session_token: &'a str,
        state: Value,
        as_user: Option<&'a str>,
    ) -> Answer<'a, ()> {
        ready(match as_user {
            Some(user) => self.update_state_as(user, session_token, state),
            None => MemoryPresence::update_state(self, session_token, state),
        })
    }

    fn set_away<'a>(&'a self, session_token: &'a str, away: bool) -> Answer<'a, ()> {
        ready(MemoryPresence::set_away(self, session_token, away))
    }

    fn disconnect<'a>(
        &'a self,
        session_token: &'a str,
        as_user: Option<&'a str>,
    ) -> Answer<'a, ()> {
        ready(match as_user {
            Some(user) => self.disconnect_as(user, session_token),
            None => MemoryPresence::disconnect(self, session_token),
        })
    }

    fn going<'a>(&'a self, session_token: &'a str, as_user: Option<&'a str>) -> Answer<'a, ()> {
        ready(MemoryPresence::going(self, session_token, as_user))
    }

    fn list<'a>(&'a self, room_token: &'a str) -> Answer<'a, RoomSnapshot> {
        ready(MemoryPresence::list(self, room_token))
    }

    fn list_shared<'a>(&'a self, room_token: &'a str) -> Answer<'a, Arc<SharedMessage>> {
        ready(MemoryPresence::list_shared(self, room_token))
    }

    fn hold<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Hold> {
        ready(MemoryPresence::hold(
            self,
            room_token,
            session_token,
            as_user,
        ))
    }

    fn list_room<'a>(&'a self, room: &'a str) -> Answer<'a, RoomSnapshot> {
        ready(Ok(MemoryPresence::list_room(self, room)))
    }

    fn list_room_now(&self, room: &str) -> Option<RoomSnapshot> {
        Some(MemoryPresence::list_room(self, room))
    }

    fn list_user<'a>(&'a self, user: &'a str) -> Answer<'a, Vec<String>> {
        ready(Ok(MemoryPresence::list_user(self, user)))
    }

    fn users_status<'a>(&'a self, users: &'a [String]) -> Answer<'a, Vec<UserStatus>> {
        ready(
            crate::server::rules::check_status_lookup(users)
                .map(|()| self.lock().users_status(users)),
        )
    }

    fn remove_room_user<'a>(&'a self, room: &'a str, user: &'a str) -> Answer<'a, bool> {
        ready(Ok(MemoryPresence::remove_room_user(self, room, user)))
    }

    fn remove_room<'a>(&'a self, room: &'a str) -> Answer<'a, bool> {
        ready(Ok(MemoryPresence::remove_room(self, room)))
    }

    fn verify_room_token(&self, room_token: &str) -> Result<String, PresenceError> {
        Ok(self.inner.room_key.verify(room_token)?.to_string())
    }

    fn room_token(&self, room: &str) -> Result<String, PresenceError> {
        MemoryPresence::room_token(self, room)
    }

    fn subscribe<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Subscription> {
        ready(match as_user {
            Some(user) => self.subscribe_as(user, room_token, session_token),
            None => MemoryPresence::subscribe(self, room_token, session_token),
        })
    }

    fn changes(&self) -> Changes {
        MemoryPresence::changes(self)
    }

    #[cfg(all(test, feature = "redis"))]
    fn settled(&self) -> Answer<'_, bool> {
        let now = self.now_ms();
        let next = self.lock().next_deadline();
        super::ready(Ok(next.is_none_or(|at| at > now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::RateLimit;

    #[tokio::test]
    async fn an_ipv6_host_is_rate_limited_by_its_64() {
        let presence = MemoryPresence::start(PresenceConfig {
            address_rate: RateLimit {
                per_second: 1.0,
                burst: 2,
            },
            ..PresenceConfig::default()
        });
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        presence.check_address(ip("2001:db8:0:1::1")).unwrap();
        presence.check_address(ip("2001:db8:0:1::2")).unwrap();
        assert!(
            presence.check_address(ip("2001:db8:0:1::3")).is_err(),
            "a fresh address in the same /64 is the same client"
        );
        presence
            .check_address(ip("2001:db8:0:2::1"))
            .expect("another /64 is another client");
    }
}
