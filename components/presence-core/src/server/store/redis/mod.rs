//! The Redis store (feature `redis`): several app servers share rooms through one Redis.
//!
//! Every operation that reads and writes is one Lua script ([`presence.lua`](presence.lua)), so
//! each is atomic however many servers call at once. Changes are published on a channel per room;
//! each server's [hub](hub) relays them to its local subscribers and resyncs from a snapshot on
//! any gap. Deadlines live in one sorted set; every server's scheduler sleeps until the earliest
//! and claims due entries inside the script, so each deadline is acted on exactly once and a dead
//! server's sessions still expire on time through the others. Nothing scans all sessions.

mod hub;
mod rates;
mod reassert;
mod touches;

use super::Answer;
use crate::error::{Field, PresenceError};
use crate::limits::{clamp_interval, expiry_after};
use crate::room_view::room_order;
use crate::server::clock::{sleep_or_wake, Clock, SystemClock};
use crate::server::config::PresenceConfig;
use crate::server::rate::KeyedLimiter;
use crate::server::subscription::{
    Changes, Resubscribed, RoomChange, SharedMessage, Source, Subscription, CHANGES_BUFFER,
};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::validate;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, RoomMessage, RoomSnapshot, UserPresence};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

const SCRIPT: &str = include_str!("presence.lua");
/// Due deadlines claimed per script call; more are taken by calling again at once.
const EXPIRE_BATCH: usize = 256;
/// While Redis is unreachable, the scheduler tries again this often.
const RETRY_WHILE_DOWN: Duration = Duration::from_millis(500);

/// A presence store in Redis. Cheap to clone; clones share one connection, one pub/sub hub and
/// one scheduler. Use it through [`crate::server::Presence::open`] with `redis_url` set.
#[derive(Clone)]
pub struct RedisPresence {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    script: redis::Script,
    /// The fast path of heartbeats that change nothing ([`touch.lua`](touch.lua)).
    touch: redis::Script,
    /// Request rates shared across servers ([`rates.lua`](rates.lua)).
    rates: redis::Script,
    /// Where fast-path heartbeats of sessions not remembered here queue for the next batch.
    touches: mpsc::UnboundedSender<touches::Queued>,
    /// Sessions that heartbeat through this server, answered from memory ([`touches`]).
    remembered: touches::Remembered,
    /// Sessions this server's subscriptions hold: made again if Redis restarts empty.
    held: reassert::Held,
    /// Redis' epoch as this server last read it ([`reassert`]).
    epoch: Mutex<Option<String>>,
    prefix: String,
    config: PresenceConfig,
    clock: Arc<dyn Clock>,
    room_key: RoomTokenKey,
    /// Per-session request rates: admitted here, shared with the other servers through Redis
    /// every flush ([`rates`]).
    sessions: Mutex<KeyedLimiter<String>>,
    addresses: Mutex<KeyedLimiter<IpAddr>>,
    hub: hub::Hub,
    /// Every room's changes, for [`RedisPresence::changes`] readers.
    all: broadcast::Sender<RoomChange>,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    /// Set when a call found Redis unreachable: the scheduler then waits for it to answer, and
    /// holds expiry for a while after (the heartbeats refused meanwhile are being retried).
    outage: std::sync::atomic::AtomicBool,
    /// Set while Redis does not answer (the last call found it unreachable): no heartbeat is
    /// answered from memory meanwhile.
    down: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.notify_one();
        self.stop.notify_one();
    }
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> PresenceError {
    PresenceError::Unavailable {
        message: format!("the presence store (Redis) did not answer: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RedisPresence {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`), keys under `config.redis_prefix`, and
    /// starts the pub/sub hub and the expiry scheduler. Fails if Redis cannot be reached now, or if
    /// no `room_token_secret` is set (every server must sign room tokens with the same key).
    pub async fn connect(url: &str, config: PresenceConfig) -> Result<Self, PresenceError> {
        Self::connect_with_clock(url, config, SystemClock::default()).await
    }

    /// [`RedisPresence::connect`] on the given clock. All servers must use the same time base:
    /// deadlines in Redis are compared with each caller's clock.
    pub async fn connect_with_clock(
        url: &str,
        config: PresenceConfig,
        clock: impl Clock,
    ) -> Result<Self, PresenceError> {
        let Some(secret) = &config.room_token_secret else {
            return Err(PresenceError::Unavailable {
                message: "a Redis store needs PRESENCE_SECRET (room_token_secret): every server \
                          must sign room tokens with the same key"
                    .into(),
            });
        };
        let room_key = RoomTokenKey::new(secret);
        let client = redis::Client::open(url).map_err(|e| PresenceError::Unavailable {
            message: format!("not a Redis URL ({url}): {e}"),
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(unavailable)?;
        let (touch_queue, touch_batches) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            client,
            conn,
            script: redis::Script::new(SCRIPT),
            touch: redis::Script::new(include_str!("touch.lua")),
            rates: redis::Script::new(include_str!("rates.lua")),
            touches: touch_queue,
            remembered: touches::Remembered::default(),
            held: reassert::Held::default(),
            epoch: Mutex::new(None),
            prefix: config.redis_prefix.clone(),
            sessions: Mutex::new(KeyedLimiter::shared(
                config.session_rate,
                config.max_tracked_addresses,
            )),
            addresses: Mutex::new(KeyedLimiter::shared(
                config.address_rate,
                config.max_tracked_addresses,
            )),
            hub: hub::Hub::new(config.subscriber_buffer),
            all: broadcast::channel(CHANGES_BUFFER).0,
            config,
            clock: Arc::new(clock),
            room_key,
            wake: Arc::new(Notify::new()),
            stop: Arc::new(Notify::new()),
            outage: std::sync::atomic::AtomicBool::new(false),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let presence = RedisPresence { inner };
        *lock(&presence.inner.epoch) = presence.read_epoch().await;
        // The hub is subscribed before anyone can subscribe through us, so no change is missed.
        let ready = Arc::new(Notify::new());
        tokio::spawn(hub::run(
            Arc::downgrade(&presence.inner),
            presence.inner.stop.clone(),
            ready.clone(),
        ));
        tokio::time::timeout(Duration::from_secs(2), ready.notified())
            .await
            .map_err(|_| PresenceError::Unavailable {
                message: "could not subscribe to Redis pub/sub".into(),
            })?;
        tokio::spawn(run_scheduler(
            Arc::downgrade(&presence.inner),
            presence.inner.wake.clone(),
        ));
        tokio::spawn(touches::run_batches(
            Arc::downgrade(&presence.inner),
            touch_batches,
        ));
        tokio::spawn(touches::run_flushes(Arc::downgrade(&presence.inner)));
        Ok(presence)
    }

    fn upgrade(weak: &Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| RedisPresence { inner })
    }

    /// The engine's current time (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Counts one request from a client address against `address_rate` (per server; an IPv6
    /// address by its /64).
    pub fn check_address(&self, address: IpAddr) -> Result<(), PresenceError> {
        let now = self.now_ms();
        lock(&self.inner.addresses).check(&crate::server::limit_key(address), now)
    }

    fn check_session_rate(&self, key: &str) -> Result<(), PresenceError> {
        let now = self.now_ms();
        lock(&self.inner.sessions).check(&key.to_string(), now)
    }

    /// Runs one op of the script now. `Ok` carries the reply after its leading `"ok"`.
    async fn call(&self, op: &str, args: &[&str]) -> Result<Vec<String>, PresenceError> {
        self.call_at(op, self.now_ms(), args).await
    }

    /// [`RedisPresence::call`] with the time the caller already used (for deadlines it sends).
    async fn call_at(
        &self,
        op: &str,
        now: u64,
        args: &[&str],
    ) -> Result<Vec<String>, PresenceError> {
        let mut invocation = self.inner.script.arg(op);
        self.add_common_args(&mut invocation, now, args);
        let mut conn = self.inner.conn.clone();
        let reply = self.answered(invocation.invoke_async(&mut conn).await)?;
        reply_of(reply)
    }

    /// A call's result; an unreachable Redis is flagged for the scheduler (see `outage`) and
    /// for the fast path (see `down`).
    fn answered<T>(&self, result: redis::RedisResult<T>) -> Result<T, PresenceError> {
        use std::sync::atomic::Ordering::Relaxed;
        if result.is_ok() && self.inner.down.load(Relaxed) {
            // Back after an outage: Redis may have restarted empty, so no session is vouched
            // for from memory until Redis has seen it again (forgotten before the fast path
            // opens again).
            self.inner.remembered.forget_all();
            self.inner.down.store(false, Relaxed);
        }
        result.map_err(|e| {
            let unreachable = e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal();
            if unreachable {
                self.inner.down.store(true, Relaxed);
                self.inner.outage.store(true, Relaxed);
                self.inner.wake.notify_one();
            }
            unavailable(e)
        })
    }

    /// The key of one session's hash, as `presence.lua` names it (`R:s:<sid>`, where the room's
    /// length keeps ids with `:` apart).
    fn session_key(&self, room: &str, session: &str) -> String {
        format!("{}:r:{}:{room}:s:{session}", self.inner.prefix, room.len())
    }

    /// The fast path of a heartbeat that changes nothing: true if [`touch.lua`](touch.lua)
    /// extended the session (in the next batch); false if the full heartbeat must decide.
    async fn touch(
        &self,
        request: &HeartbeatRequest,
        touch: touches::Touch,
        generation: u64,
    ) -> Result<bool, PresenceError> {
        let remembered = &self.inner.remembered;
        let down = self.inner.down.load(std::sync::atomic::Ordering::Relaxed);
        if !down && remembered.answer(request, &touch) {
            return Ok(true);
        }
        let (reply, answer) = oneshot::channel();
        let shutting_down = || PresenceError::Unavailable {
            message: "the presence store is shutting down".into(),
        };
        self.inner
            .touches
            .send((touch.clone(), reply))
            .map_err(|_| shutting_down())?;
        let extended = answer.await.unwrap_or_else(|_| Err(shutting_down()))?;
        if extended {
            remembered.remember(&request.room, &request.session, touch, generation);
        }
        Ok(extended)
    }

    /// What a heartbeat that Redis accepted leaves to remember of its session.
    fn touch_for(
        &self,
        request: &HeartbeatRequest,
        token: &str,
        name: &str,
        now: u64,
        expires_at: u64,
    ) -> touches::Touch {
        touches::Touch {
            session_key: self.session_key(&request.room, &request.session),
            token: token.to_string(),
            user: request.user.clone(),
            name: name.to_string(),
            away: request.away,
            now,
            expires_at,
        }
    }

    fn add_common_args(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        now: u64,
        args: &[&str],
    ) {
        let config = &self.inner.config;
        invocation
            .arg(&self.inner.prefix)
            .arg(now)
            .arg(config.offline_retention_ms)
            .arg(config.max_offline_users_per_room);
        for arg in args {
            invocation.arg(*arg);
        }
    }

    /// Joins a room or keeps a session alive; see [`crate::server::MemoryPresence::heartbeat`].
    pub async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, PresenceError> {
        validate::id(Field::Room, &request.room)?;
        validate::id(Field::User, &request.user)?;
        validate::id(Field::Session, &request.session)?;
        let name = validate::name_as_stored(&request.name);
        validate::name(name)?;
        let token = match &request.session_token {
            Some(t) => Some(SessionToken::parse(t)?),
            None => None,
        };
        // A proposal for a new session is adopted only if it looks random (see the registry);
        // the script adopts whatever it is given here for a new session.
        let weak_proposal = token.is_some_and(|t| !t.looks_random());
        let token = token.map(|t| t.to_hex());
        let (state_mode, state) = match &request.state {
            None => ("keep", String::new()),
            Some(Value::Null) => ("clear", String::new()),
            Some(state) => {
                validate::state(state)?;
                ("set", state.to_string())
            }
        };
        self.check_session_rate(token.as_deref().unwrap_or(&request.session))?;
        let interval_ms = clamp_interval(request.interval_ms);
        let now = self.now_ms();
        let expires_at = now + expiry_after(interval_ms);
        let response = |session_token: String, joined: bool| HeartbeatResponse {
            user_id: request.user.clone(),
            session_token,
            room_token: self.inner.room_key.sign(&request.room),
            joined,
            interval_ms,
            expires_at,
        };
        // What was forgotten before this heartbeat asked: a leave meanwhile wins.
        let generation = self.inner.remembered.generation();
        if let (Some(token), None) = (&token, &request.state) {
            let touch = self.touch_for(request, token, name, now, expires_at);
            if self.touch(request, touch, generation).await? {
                return Ok(response(token.clone(), false));
            }
        }
        let config = &self.inner.config;
        let new_token = SessionToken::generate().to_hex();
        let numbers = [
            expires_at.to_string(),
            config.max_sessions_per_room.to_string(),
            config.max_rooms_per_user.to_string(),
            config.max_sessions_per_user.to_string(),
        ];
        let reply = self
            .call_at(
                "heartbeat",
                now,
                &[
                    &request.room,
                    &request.user,
                    &request.session,
                    token.as_deref().unwrap_or(""),
                    &new_token,
                    name,
                    if request.away { "1" } else { "0" },
                    state_mode,
                    &state,
                    &numbers[0],
                    &numbers[1],
                    &numbers[2],
                    &numbers[3],
                    if weak_proposal { "0" } else { "1" },
                ],
            )
            .await;
        let reply = reply.map_err(|e| match e {
            PresenceError::RoomFull { limit, .. } => PresenceError::RoomFull {
                room: request.room.clone(),
                limit,
            },
            other => other,
        })?;
        let [session_token, joined] = reply.as_slice() else {
            return Err(malformed_reply("heartbeat"));
        };
        let touch = self.touch_for(request, session_token, name, now, expires_at);
        self.inner
            .remembered
            .remember(&request.room, &request.session, touch, generation);
        Ok(response(session_token.clone(), joined == "1"))
    }

    async fn update(
        &self,
        token: &str,
        as_user: Option<&str>,
        what: &str,
        value: &str,
    ) -> Result<(), PresenceError> {
        let token = SessionToken::parse(token)
            .map_err(|_| PresenceError::InvalidSessionToken)?
            .to_hex();
        self.check_session_rate(&token)?;
        // The away flag may change here: the next heartbeat is checked against Redis again.
        self.inner.remembered.forget(&token);
        self.call("update", &[&token, as_user.unwrap_or(""), what, value])
            .await
            .map(drop)
    }

    /// Replaces a session's app-defined state (`null` clears it). One `Updated` if it changed.
    pub async fn update_state(
        &self,
        session_token: &str,
        state: Value,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        validate::state(&state)?;
        self.update(session_token, as_user, "state", &state.to_string())
            .await
    }

    /// Marks a session away or active. One `Updated` if it changed.
    pub async fn set_away(&self, session_token: &str, away: bool) -> Result<(), PresenceError> {
        self.update(session_token, None, "away", if away { "1" } else { "0" })
            .await
    }

    /// Ends a session now; with `as_user`, only if it is that user's.
    pub async fn disconnect(
        &self,
        session_token: &str,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        let token = SessionToken::parse(session_token)
            .map_err(|_| PresenceError::InvalidSessionToken)?
            .to_hex();
        self.inner.remembered.forget(&token);
        self.call("disconnect", &[&token, as_user.unwrap_or("")])
            .await
            .map(drop)
    }

    /// The room a room token grants, and its snapshot.
    pub async fn list(&self, room_token: &str) -> Result<RoomSnapshot, PresenceError> {
        let room = self.inner.room_key.verify(room_token)?.to_string();
        self.list_room(&room).await
    }

    /// [`RedisPresence::list`] as a shared message: the one this server's subscribers of the room
    /// share while nothing changes, if someone here watches it; otherwise read from Redis.
    pub async fn list_shared(&self, room_token: &str) -> Result<Arc<SharedMessage>, PresenceError> {
        let room: Arc<str> = Arc::from(self.inner.room_key.verify(room_token)?);
        if let Some(cached) = self.inner.hub.cached(&room) {
            return Ok(cached);
        }
        let snapshot = self.snapshot_message(&room).await?;
        self.inner.hub.offer_snapshot(&room, &snapshot);
        Ok(snapshot)
    }

    /// A room's snapshot, without a token.
    pub async fn list_room(&self, room: &str) -> Result<RoomSnapshot, PresenceError> {
        let reply = self.call("snapshot", &[room]).await?;
        snapshot_of(room, reply)
    }

    /// A room as this server last relayed it, with no round trip to Redis (for server-side
    /// rendering, which is synchronous): `Some` while a subscriber here watches the room.
    pub fn list_room_now(&self, room: &str) -> Option<RoomSnapshot> {
        self.inner.hub.paint(room)
    }

    /// The rooms where `user` is online, sorted.
    pub async fn list_user(&self, user: &str) -> Result<Vec<String>, PresenceError> {
        let mut rooms = self.call("list_user", &[user]).await?;
        rooms.sort();
        Ok(rooms)
    }

    /// Removes a user and its sessions from a room. True if listed.
    pub async fn remove_room_user(&self, room: &str, user: &str) -> Result<bool, PresenceError> {
        let reply = self.call("remove_room_user", &[room, user]).await?;
        Ok(reply.first().is_some_and(|r| r == "1"))
    }

    /// Removes everyone from a room. True if anyone was listed.
    pub async fn remove_room(&self, room: &str) -> Result<bool, PresenceError> {
        let reply = self.call("remove_room", &[room]).await?;
        Ok(reply.first().is_some_and(|r| r == "1"))
    }

    /// The room token for `room`.
    pub fn room_token(&self, room: &str) -> Result<String, PresenceError> {
        validate::id(Field::Room, room)?;
        Ok(self.inner.room_key.sign(room))
    }

    /// Subscribes to the room a room token grants; with a session token, the subscription holds
    /// that session (see [`crate::server::MemoryPresence::subscribe`]).
    pub async fn subscribe(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        let room: Arc<str> = Arc::from(self.inner.room_key.verify(room_token)?);
        validate::id(Field::Room, &room)?;
        let session = match session_token {
            Some(token) => {
                let token = SessionToken::parse(token)
                    .map_err(|_| PresenceError::InvalidSessionToken)?
                    .to_hex();
                let reply = self
                    .call("hold", &[&token, as_user.unwrap_or(""), &room])
                    .await?;
                let sid = reply
                    .into_iter()
                    .next()
                    .ok_or_else(|| malformed_reply("hold"))?;
                Some((sid, token))
            }
            None => None,
        };
        let hold = RedisHold {
            presence: self.clone(),
            room: room.clone(),
            session,
        };
        let (rx, cached) = self.inner.hub.watch(&room);
        let snapshot = match cached {
            Some(snapshot) => snapshot,
            None => match self.snapshot_message(&room).await {
                Ok(snapshot) => {
                    self.inner.hub.offer_snapshot(&room, &snapshot);
                    snapshot
                }
                Err(e) => {
                    hold.release(); // undo the watch and the session hold
                    return Err(e);
                }
            },
        };
        // Registered only now, with nothing left to await: a subscribe dropped half way leaves
        // nothing here to make again after a restart.
        if let Some((sid, token)) = &hold.session {
            self.inner.held.add(token, &hold.room, sid);
        }
        Ok(Subscription::new(Box::new(hold), snapshot, rx))
    }

    async fn snapshot_message(&self, room: &str) -> Result<Arc<SharedMessage>, PresenceError> {
        let snapshot = self.list_room(room).await?;
        Ok(Arc::new(SharedMessage::new(RoomMessage::Snapshot(
            snapshot,
        ))))
    }

    /// A snapshot, retried with backoff until Redis answers (for resyncs, which have no caller
    /// to report an error to).
    async fn snapshot_patiently(&self, room: &str) -> Arc<SharedMessage> {
        let mut delay = Duration::from_millis(50);
        loop {
            if let Ok(snapshot) = self.snapshot_message(room).await {
                return snapshot;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Ends what is due; returns the next deadline. Several calls in a row if many are due.
    async fn expire_due(&self) -> Result<Option<u64>, PresenceError> {
        loop {
            let batch = EXPIRE_BATCH.to_string();
            let reply = self.call("expire", &[&batch]).await?;
            let [ended, next] = reply.as_slice() else {
                return Err(malformed_reply("expire"));
            };
            if ended.parse::<usize>().unwrap_or(0) < EXPIRE_BATCH {
                return Ok(next.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok()));
            }
        }
    }

    /// Every change in every room, made through any server on this Redis.
    pub fn changes(&self) -> Changes {
        Changes::new(self.inner.all.subscribe())
    }

    /// Keys that hold this store's data start with this prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }
}

/// A subscription's hold on a room through this server's hub (and perhaps on one session).
#[derive(Debug)]
pub(crate) struct RedisHold {
    presence: RedisPresence,
    room: Arc<str>,
    /// Session id and token, when the subscription holds a session.
    session: Option<(String, String)>,
}

impl Source for RedisHold {
    fn room(&self) -> &str {
        &self.room
    }

    /// A fresh snapshot and receiver for a subscriber that fell behind.
    fn resubscribe(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resubscribed> + Send + '_>> {
        Box::pin(async move {
            let rx = self.presence.inner.hub.receiver(&self.room);
            let snapshot = self.presence.snapshot_patiently(&self.room).await;
            (snapshot, rx)
        })
    }

    /// Closes the watch; a held session gets the grace deadline (in the background).
    fn release(&self) {
        self.presence.inner.hub.unwatch(&self.room);
        let Some((sid, token)) = self.session.clone() else {
            return;
        };
        self.presence.inner.held.remove(&token);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left: the session keeps its heartbeat deadline
        };
        let presence = self.presence.clone();
        let room = self.room.clone();
        runtime.spawn(async move {
            let grace = presence.inner.config.subscription_grace_ms.to_string();
            let _ = presence
                .call("release", &[&room, &sid, &token, &grace])
                .await;
        });
    }
}

impl super::Store for RedisPresence {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn config(&self) -> &PresenceConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> u64 {
        RedisPresence::now_ms(self)
    }

    fn check_address(&self, address: IpAddr) -> Result<(), PresenceError> {
        RedisPresence::check_address(self, address)
    }

    fn heartbeat<'a>(&'a self, request: &'a HeartbeatRequest) -> Answer<'a, HeartbeatResponse> {
        Box::pin(RedisPresence::heartbeat(self, request))
    }

    fn update_state<'a>(
        &'a self,
        session_token: &'a str,
        state: Value,
        as_user: Option<&'a str>,
    ) -> Answer<'a, ()> {
        Box::pin(RedisPresence::update_state(
            self,
            session_token,
            state,
            as_user,
        ))
    }

    fn set_away<'a>(&'a self, session_token: &'a str, away: bool) -> Answer<'a, ()> {
        Box::pin(RedisPresence::set_away(self, session_token, away))
    }

    fn disconnect<'a>(
        &'a self,
        session_token: &'a str,
        as_user: Option<&'a str>,
    ) -> Answer<'a, ()> {
        Box::pin(RedisPresence::disconnect(self, session_token, as_user))
    }

    fn list<'a>(&'a self, room_token: &'a str) -> Answer<'a, RoomSnapshot> {
        Box::pin(RedisPresence::list(self, room_token))
    }

    fn list_shared<'a>(&'a self, room_token: &'a str) -> Answer<'a, Arc<SharedMessage>> {
        Box::pin(RedisPresence::list_shared(self, room_token))
    }

    fn list_room<'a>(&'a self, room: &'a str) -> Answer<'a, RoomSnapshot> {
        Box::pin(RedisPresence::list_room(self, room))
    }

    fn list_room_now(&self, room: &str) -> Option<RoomSnapshot> {
        RedisPresence::list_room_now(self, room)
    }

    fn list_user<'a>(&'a self, user: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(RedisPresence::list_user(self, user))
    }

    fn remove_room_user<'a>(&'a self, room: &'a str, user: &'a str) -> Answer<'a, bool> {
        Box::pin(RedisPresence::remove_room_user(self, room, user))
    }

    fn remove_room<'a>(&'a self, room: &'a str) -> Answer<'a, bool> {
        Box::pin(RedisPresence::remove_room(self, room))
    }

    fn room_token(&self, room: &str) -> Result<String, PresenceError> {
        RedisPresence::room_token(self, room)
    }

    fn subscribe<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Subscription> {
        Box::pin(RedisPresence::subscribe(
            self,
            room_token,
            session_token,
            as_user,
        ))
    }

    fn changes(&self) -> Changes {
        RedisPresence::changes(self)
    }
}

/// The scheduler: claim and end what is due, then sleep until the next deadline or until a
/// server announces an earlier one. A pause of this process, or an outage of Redis, holds expiry
/// for `stall_grace_ms` afterwards (see [`crate::server::stall`]): the heartbeats that failed or waited
/// meanwhile come in first.
async fn run_scheduler(engine: Weak<Inner>, wake: Arc<Notify>) {
    let mut stall = crate::server::stall::StallGuard::default();
    // Since when this scheduler has found Redis unreachable, if it has.
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let Some(presence) = RedisPresence::upgrade(&engine) else {
            return;
        };
        let request_failed = presence
            .inner
            .outage
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if down_since.is_some() || request_failed {
            // A call found Redis unreachable: ask whether it answers before acting on any
            // deadline. Only an outage that lasted (not one slow reply) holds expiry after.
            let mut conn = presence.inner.conn.clone();
            match redis::cmd("PING").query_async::<String>(&mut conn).await {
                Ok(_) => {
                    let lasted = down_since.take().map_or(Duration::ZERO, |t| t.elapsed());
                    if lasted.as_millis() as u64 > crate::server::stall::STALL_THRESHOLD_MS {
                        stall.outage();
                    }
                }
                Err(_) => {
                    down_since.get_or_insert_with(std::time::Instant::now);
                    drop(presence);
                    // Real time, and deaf to wakes: one probe per interval, not one per
                    // failed request.
                    tokio::time::sleep(RETRY_WHILE_DOWN).await;
                    continue;
                }
            }
        }
        let now = presence.now_ms();
        let grace = presence.inner.config.stall_grace_ms;
        let late_by = stall
            .planned()
            .map_or(0, |planned| presence.inner.clock.lateness(planned, now));
        let at = match stall.woke(now, late_by, grace) {
            Some(held_until) => {
                stall.holding_until(held_until);
                Some(held_until)
            }
            // What this server answered from memory is written before anyone is judged gone.
            None => match match presence.flush_remembered().await {
                Ok(()) => presence.expire_due().await,
                Err(e) => Err(e),
            } {
                Ok(next) => {
                    stall.sleeping_until(next);
                    next
                }
                Err(_) => {
                    down_since.get_or_insert_with(std::time::Instant::now);
                    drop(presence);
                    tokio::time::sleep(RETRY_WHILE_DOWN).await;
                    continue;
                }
            },
        };
        let sleep = at.map(|at| presence.inner.clock.sleep_until(at));
        drop(presence);
        sleep_or_wake(sleep, &wake).await;
    }
}

fn malformed_reply(op: &str) -> PresenceError {
    PresenceError::Unavailable {
        message: format!("the presence store gave an unexpected reply to {op}"),
    }
}

/// The script's reply without its leading `"ok"`, or its error as a [`PresenceError`].
fn reply_of(mut reply: Vec<String>) -> Result<Vec<String>, PresenceError> {
    match reply.first().map(String::as_str) {
        Some("ok") => {
            reply.remove(0);
            Ok(reply)
        }
        Some("err") => {
            let code = reply.get(1).map(String::as_str).unwrap_or("");
            let detail = reply.get(2).cloned().unwrap_or_default();
            let limit = || detail.parse().unwrap_or(0);
            Err(match code {
                "invalid_session_token" => PresenceError::InvalidSessionToken,
                "forbidden" => PresenceError::Forbidden {
                    reason: "this session belongs to another user".into(),
                },
                "wrong_user" => PresenceError::Forbidden {
                    reason: "this session belongs to another user".into(),
                },
                "session_token_mismatch" => PresenceError::SessionTokenMismatch { session: detail },
                "room_full" => PresenceError::RoomFull {
                    room: String::new(),
                    limit: limit(),
                },
                "too_many_rooms" => PresenceError::TooManyRooms { limit: limit() },
                "too_many_sessions" => PresenceError::TooManySessions { limit: limit() },
                _ => PresenceError::BadRequest { message: detail },
            })
        }
        _ => Err(malformed_reply("a call")),
    }
}

fn snapshot_of(room: &str, reply: Vec<String>) -> Result<RoomSnapshot, PresenceError> {
    let mut parts = reply.into_iter();
    let seq = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed_reply("snapshot"))?;
    let mut users = parts
        .map(|json| serde_json::from_str::<UserPresence>(&json))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| malformed_reply("snapshot"))?;
    users.sort_by(room_order);
    Ok(RoomSnapshot {
        room: room.to_string(),
        seq,
        users,
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    /// The Redis that tests use: `PRESENCE_TEST_REDIS_URL`, or `None` (the Redis runs of the
    /// behaviour suite are then skipped, and say so).
    pub fn url() -> Option<String> {
        std::env::var("PRESENCE_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
mod touch_tests;
