//! The Redis store (feature `redis`): several app servers share rooms through one Redis.
//!
//! The rules are the engine's own ([`crate::server::rules`], shared with the memory store): a
//! change loads what they need ([`load.lua`](load.lua)), they decide, and the decision is
//! committed atomically by [`commit.lua`](commit.lua) if the room has not changed meanwhile
//! (otherwise it is decided again). The scripts decide nothing. Changes are published on a channel per room;
//! each server's [hub](hub) relays them to its local subscribers and resyncs from a snapshot on
//! any gap. Deadlines live in one sorted set; every server's scheduler sleeps until the earliest
//! and claims due entries with `claim.lua`, so each deadline is acted on exactly once and a dead
//! server's sessions still expire on time through the others. Nothing scans all sessions.

mod changes;
mod commit;
mod conn;
mod hub;
mod keys;
mod load;
mod rates;
mod reassert;
mod recount;
mod slots;
mod touches;
mod turns;

use super::Answer;
use crate::error::{Field, PresenceError};
use crate::limits::{clamp_interval, lifetime_ms};
use crate::server::clock::{sleep_or_wake, Clock, SystemClock};
use crate::server::config::PresenceConfig;
use crate::server::rate::KeyedLimiter;
use crate::server::rules::{self, UserFacts};
use crate::server::subscription::{
    Changes, Hold, Resubscribed, RoomChange, SharedMessage, Source, Subscription, CHANGES_BUFFER,
};
use crate::server::token::{RoomTokenKey, SessionToken};
use crate::validate;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, RoomMessage, RoomSnapshot};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

/// How long a claimed deadline waits before another server may take it (see claim.lua).
const CLAIM_LEASE_MS: u64 = 10_000;
/// While Redis is unreachable, the scheduler tries again this often.
const RETRY_WHILE_DOWN: Duration = Duration::from_millis(500);

/// A presence store in Redis. Cheap to clone; clones share one connection, one pub/sub hub and
/// one scheduler. Use it through [`crate::server::Presence::open`] with `redis_url` set.
#[derive(Clone)]
pub struct RedisPresence {
    inner: Arc<Inner>,
}

struct Inner {
    /// For pub/sub.
    client: redis::Client,
    conn: conn::Conn,
    /// Reads what the rules need ([`load.lua`](load.lua)).
    load: redis::Script,
    /// Writes what they decided ([`commit.lua`](commit.lua)).
    commit: redis::Script,
    /// Takes a due deadline ([`claim.lua`](claim.lua)).
    claim: redis::Script,
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
    /// Redis' epochs as this server last read them, one per slot group ([`reassert`]).
    epoch: Mutex<Vec<Option<String>>>,
    layout: keys::Layout,
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
    /// This server's changes to one room take turns ([`turns`]).
    turns: turns::Turns,
    /// A slot-group epoch check is running ([`reassert`]).
    checking: std::sync::atomic::AtomicBool,
    /// Held while a restart (Redis, or a slot group, that lost its data) is handled
    /// ([`reassert`]).
    restart: tokio::sync::Mutex<()>,
    /// Set while the scheduler acts on due deadlines.
    expiring: std::sync::atomic::AtomicBool,
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
            .field("layout", &self.inner.layout)
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
        if config.redis_slot_groups > 1 && config.redis_prefix.contains(['{', '}']) {
            return Err(PresenceError::Unavailable {
                message: "with redis_slot_groups above 1 the Redis prefix must have no braces \
                          (each group makes its own hash tag)"
                    .into(),
            });
        }
        let Some(secret) = &config.room_token_secret else {
            return Err(PresenceError::Unavailable {
                message: "a Redis store needs PRESENCE_SECRET (room_token_secret): every server \
                          must sign room tokens with the same key"
                    .into(),
            });
        };
        let room_key = RoomTokenKey::new(secret);
        let conn::Connected {
            conn,
            pubsub: client,
        } = conn::connect(url, config.redis_cluster)
            .await
            .map_err(|e| match e.kind() {
                redis::ErrorKind::InvalidClientConfig => PresenceError::Unavailable {
                    message: format!("not a Redis URL ({url}): {e}"),
                },
                _ => unavailable(e),
            })?;
        let (touch_queue, touch_batches) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            client,
            conn,
            load: redis::Script::new(include_str!("load.lua")),
            commit: redis::Script::new(include_str!("commit.lua")),
            claim: redis::Script::new(include_str!("claim.lua")),
            touch: redis::Script::new(include_str!("touch.lua")),
            rates: redis::Script::new(include_str!("rates.lua")),
            touches: touch_queue,
            remembered: touches::Remembered::default(),
            held: reassert::Held::default(),
            epoch: Mutex::new(Vec::new()),
            layout: keys::Layout::new(
                &config.redis_prefix,
                config.redis_cluster,
                config.redis_slot_groups,
            ),
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
            expiring: std::sync::atomic::AtomicBool::new(false),
            checking: std::sync::atomic::AtomicBool::new(false),
            restart: tokio::sync::Mutex::new(()),
            turns: turns::Turns::default(),
        });
        let presence = RedisPresence { inner };
        *lock(&presence.inner.epoch) = presence.read_epochs().await;
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

    /// The key of one session's hash (see [`keys`]).
    fn session_key(&self, room: &str, session: &str) -> String {
        self.inner.layout.room(room).session(session)
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
            mark: keys::status_mark(
                request.away,
                request.idle_for_ms.is_some(),
                request.kind,
                request.invisible,
            ),
            now,
            expires_at,
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
        // With slot groups a session's token is in its room's group (see `keys::Layout`): a
        // token sent is read as moved there, before anything is keyed by it. A live session's
        // own token is there already, and a join's retry finds the session its proposal made.
        let layout = &self.inner.layout;
        let token = match &request.session_token {
            Some(t) => {
                Some(layout.token_in_group(SessionToken::parse(t)?, layout.group_of(&request.room)))
            }
            None => None,
        };
        let hex = token.map(|t| t.to_hex());
        if let Some(state) = &request.state {
            validate::state(state)?;
        }
        self.check_session_rate(hex.as_deref().unwrap_or(&request.session))?;
        validate::ttl(request.kind, request.ttl_ms)?;
        let interval_ms = clamp_interval(request.interval_ms);
        let now = self.now_ms();
        let expires_at = now + lifetime_ms(interval_ms, request.ttl_ms);
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
        // An invisible session's heartbeats take the full path: one that turns invisible must
        // never be answered from what this server last saw (another may have shown it since).
        if let (Some(token), None, false) = (&hex, &request.state, request.invisible) {
            let touch = self.touch_for(request, token, name, now, expires_at);
            if self.touch(request, touch, generation).await? {
                return Ok(response(token.clone(), false));
            }
        }
        let beat = self
            .full_heartbeat(request, name, token, now, expires_at)
            .await?;
        let session_token = &beat.token;
        let joined = beat.joined;
        let touch = self.touch_for(request, session_token, name, now, expires_at);
        self.inner
            .remembered
            .remember(&request.room, &request.session, touch, generation);
        Ok(response(session_token.clone(), joined))
    }

    /// Replaces a session's app-defined state (`null` clears it). One `Updated` if it changed.
    pub async fn update_state(
        &self,
        session_token: &str,
        state: Value,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        validate::state(&state)?;
        let token = self.session_token_arg(session_token)?;
        self.change_session(&token, as_user, |current| {
            rules::state_change(current, state.clone())
        })
        .await
    }

    /// Marks a session away or active. One `Updated` if it changed.
    pub async fn set_away(&self, session_token: &str, away: bool) -> Result<(), PresenceError> {
        let token = self.session_token_arg(session_token)?;
        self.change_session(&token, None, |current| rules::away_change(current, away))
            .await
    }

    /// A token a client sent, as stored (hex); counted against its session's rate. The fast
    /// path forgets it: the next heartbeat is checked against Redis again.
    fn session_token_arg(&self, session_token: &str) -> Result<String, PresenceError> {
        let token = SessionToken::parse(session_token)
            .map_err(|_| PresenceError::InvalidSessionToken)?
            .to_hex();
        self.check_session_rate(&token)?;
        self.forget_token(&token)
    }

    /// Ends a session now; with `as_user`, only if it is that user's.
    pub async fn disconnect(
        &self,
        session_token: &str,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        let token = self.forget_token(session_token)?;
        self.end_by_token(&token, as_user).await
    }

    /// A token a client sent, as stored (hex), forgotten by the fast path: the session's next
    /// heartbeat goes to Redis (which ends it, or takes a goodbye back).
    fn forget_token(&self, session_token: &str) -> Result<String, PresenceError> {
        let token = SessionToken::parse(session_token)
            .map_err(|_| PresenceError::InvalidSessionToken)?
            .to_hex();
        self.inner.remembered.forget(&token);
        Ok(token)
    }

    /// The session's page is going; see [`crate::server::Presence::going`].
    pub async fn going(
        &self,
        session_token: &str,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        let token = self.forget_token(session_token)?;
        self.going_by_token(&token, as_user).await
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
        let keys = self.inner.layout.room(room);
        let mut conn = self.inner.conn.clone();
        let (seq, users): (Option<String>, std::collections::HashMap<String, String>) = self
            .answered(
                redis::pipe()
                    .atomic()
                    .get(keys.seq())
                    .hgetall(keys.users())
                    .query_async(&mut conn)
                    .await,
            )?;
        let users = users
            .into_iter()
            .map(|(id, json)| Some((id, serde_json::from_str::<UserFacts>(&json).ok()?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed_reply("snapshot"))?;
        let seq = match seq {
            Some(stored) => keys::seq_of(&stored).ok_or_else(|| malformed_reply("snapshot"))?,
            None => 0,
        };
        Ok(rules::snapshot(
            room,
            seq,
            users.iter().map(|(id, facts)| (id.as_str(), facts)),
        ))
    }

    /// A room as this server last relayed it, with no round trip to Redis (for server-side
    /// rendering, which is synchronous): `Some` while a subscriber here watches the room.
    pub fn list_room_now(&self, room: &str) -> Option<RoomSnapshot> {
        self.inner.hub.paint(room)
    }

    /// The rooms where `user` is online (as others see it: not where only invisible), sorted.
    pub async fn list_user(&self, user: &str) -> Result<Vec<String>, PresenceError> {
        let mut conn = self.inner.conn.clone();
        let fields: Vec<String> = self.answered(
            redis::cmd("HKEYS")
                .arg(self.inner.layout.user_rooms(user))
                .query_async(&mut conn)
                .await,
        )?;
        // Fields `<room>\n<sid>`, one per session held (see `keys::held_session`).
        let mut rooms: Vec<String> = fields
            .iter()
            .filter_map(|f| keys::held_room(f).map(|(room, _)| room.to_string()))
            .collect();
        rooms.sort();
        rooms.dedup();
        if rooms.is_empty() {
            return Ok(rooms);
        }
        let facts = self
            .listings(rooms.iter().map(|room| (room.as_str(), user)))
            .await?;
        let mut shown: Vec<String> = rooms
            .into_iter()
            .zip(facts)
            .filter(|(_, json)| {
                json.as_deref()
                    .and_then(|j| serde_json::from_str::<UserFacts>(j).ok())
                    .is_some_and(|f| f.is_online())
            })
            .map(|(room, _)| room)
            .collect();
        shown.sort();
        Ok(shown)
    }

    /// Removes a user and its sessions from a room. True if listed.
    pub async fn remove_room_user(&self, room: &str, user: &str) -> Result<bool, PresenceError> {
        self.remove_user(room, user).await
    }

    /// Removes everyone from a room. True if anyone was listed.
    pub async fn remove_room(&self, room: &str) -> Result<bool, PresenceError> {
        let keys = self.inner.layout.room(room);
        let mut conn = self.inner.conn.clone();
        let users: Vec<String> = self.answered(
            redis::cmd("HKEYS")
                .arg(keys.users())
                .query_async(&mut conn)
                .await,
        )?;
        let mut any = false;
        for user in users {
            any |= self.remove_user(room, &user).await?;
        }
        Ok(any)
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
        let hold = self
            .take_hold(room_token, session_token, as_user, true)
            .await?;
        let room = hold.room.clone();
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

    /// A subscriber's hold on a room and session without watching it (for summary subscribers,
    /// which read the room through its summarizer's own subscription).
    pub(crate) async fn hold(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
    ) -> Result<Hold, PresenceError> {
        let hold = self
            .take_hold(room_token, session_token, as_user, false)
            .await?;
        if let Some((sid, token)) = &hold.session {
            self.inner.held.add(token, &hold.room, sid);
        }
        Ok(Hold::new(Box::new(hold)))
    }

    /// Checks the room token and holds the session a session token names (its grace deadline
    /// cleared until the hold is released).
    async fn take_hold(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
        watching: bool,
    ) -> Result<RedisHold, PresenceError> {
        let room: Arc<str> = Arc::from(self.inner.room_key.verify(room_token)?);
        validate::id(Field::Room, &room)?;
        let session = match session_token {
            Some(token) => {
                let token = SessionToken::parse(token)
                    .map_err(|_| PresenceError::InvalidSessionToken)?
                    .to_hex();
                let sid = self.hold_session(&token, as_user, &room).await?;
                Some((sid, token))
            }
            None => None,
        };
        Ok(RedisHold {
            presence: self.clone(),
            room,
            session,
            watching,
        })
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

    /// Ends what is due, one deadline at a time, earliest first; returns the next deadline.
    async fn expire_due(&self) -> Result<Option<u64>, PresenceError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.inner.expiring.store(true, SeqCst);
        let next = self.expire_each_due().await;
        self.inner.expiring.store(false, SeqCst);
        next
    }

    /// Every slot group's due deadlines, the groups side by side; the earliest next deadline.
    async fn expire_each_due(&self) -> Result<Option<u64>, PresenceError> {
        let groups = (0..self.inner.layout.groups()).map(|g| self.expire_group(g));
        let mut next: Option<u64> = None;
        for result in futures_util::future::join_all(groups).await {
            if let Some(at) = result? {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }

    async fn expire_group(&self, group: u32) -> Result<Option<u64>, PresenceError> {
        let dl = self.inner.layout.deadlines(group);
        loop {
            let now = self.now_ms();
            let mut conn = self.inner.conn.clone();
            let (member, at): (String, String) = self.answered(
                self.inner
                    .claim
                    .key(&dl)
                    .arg(now)
                    .arg(CLAIM_LEASE_MS)
                    .invoke_async(&mut conn)
                    .await,
            )?;
            if member.is_empty() {
                return Ok(at.parse::<u64>().ok());
            }
            if let Err(e) = self.act_on_deadline(&member, now).await {
                if self.inner.down.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(e);
                }
                // Not an outage (a room too busy right now): its entry comes back when its
                // lease ends; the other due deadlines go on.
            }
        }
    }

    /// Every change in every room, made through any server on this Redis.
    pub fn changes(&self) -> Changes {
        Changes::new(self.inner.all.subscribe())
    }

    /// The prefix of this store's channels and keys (with slot groups, keys start with
    /// `{<prefix>:<group>}`).
    pub fn prefix(&self) -> &str {
        self.inner.layout.prefix()
    }
}

/// A subscription's hold on a room through this server's hub (and perhaps on one session).
#[derive(Debug)]
pub(crate) struct RedisHold {
    presence: RedisPresence,
    room: Arc<str>,
    /// Session id and token, when the subscription holds a session.
    session: Option<(String, String)>,
    /// Whether it watches the room through the hub (a [`Hold`] does not).
    watching: bool,
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
        if self.watching {
            self.presence.inner.hub.unwatch(&self.room);
        }
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
            let grace = presence.inner.config.subscription_grace_ms;
            let _ = presence.release_session(&room, &sid, &token, grace).await;
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

    fn going<'a>(&'a self, session_token: &'a str, as_user: Option<&'a str>) -> Answer<'a, ()> {
        Box::pin(RedisPresence::going(self, session_token, as_user))
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

    fn users_status<'a>(&'a self, users: &'a [String]) -> Answer<'a, Vec<crate::wire::UserStatus>> {
        Box::pin(async move {
            rules::check_status_lookup(users)?;
            self.status_of(users).await
        })
    }

    fn remove_room<'a>(&'a self, room: &'a str) -> Answer<'a, bool> {
        Box::pin(RedisPresence::remove_room(self, room))
    }

    fn verify_room_token(&self, room_token: &str) -> Result<String, PresenceError> {
        Ok(self.inner.room_key.verify(room_token)?.to_string())
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

    fn hold<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Hold> {
        Box::pin(RedisPresence::hold(
            self,
            room_token,
            session_token,
            as_user,
        ))
    }

    fn changes(&self) -> Changes {
        RedisPresence::changes(self)
    }

    #[cfg(all(test, feature = "redis"))]
    fn settled(&self) -> Answer<'_, bool> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            if self.inner.expiring.load(SeqCst) {
                return Ok(false);
            }
            let mut conn = self.inner.conn.clone();
            for group in 0..self.inner.layout.groups() {
                let due: Vec<String> = self.answered(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(self.inner.layout.deadlines(group))
                        .arg("-inf")
                        .arg(self.now_ms())
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1)
                        .query_async(&mut conn)
                        .await,
                )?;
                if !due.is_empty() {
                    return Ok(false);
                }
            }
            Ok(!self.inner.expiring.load(SeqCst))
        })
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

#[cfg(test)]
pub(crate) mod test_support {
    /// The Redis that tests use: `PRESENCE_TEST_REDIS_URL`, or `None` (the Redis runs of the
    /// behaviour suite are then skipped, and say so).
    pub fn url() -> Option<String> {
        std::env::var("PRESENCE_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }

    /// A token proposed for a new session in `room`, as a store with `groups` slot groups
    /// adopts it (moved into the room's group: see `keys::Layout::token_in_group`).
    pub fn adopted_token(groups: u32, room: &str, token: &str) -> String {
        let layout = super::keys::Layout::new("test", false, groups);
        let token = crate::server::token::SessionToken::parse(token).expect("a token");
        layout.token_in_group(token, layout.group_of(room)).to_hex()
    }

    /// The pattern of every key in `room`'s slot group, for a store on `config` (with slot
    /// groups): to make that group lose its data, as a Cluster shard restarted empty would.
    pub fn group_pattern(config: &crate::server::PresenceConfig, room: &str) -> String {
        let layout = super::keys::Layout::new(
            &config.redis_prefix,
            config.redis_cluster,
            config.redis_slot_groups,
        );
        format!("{{{}:{}}}*", config.redis_prefix, layout.group_of(room))
    }

    /// The keys on one Redis node (its URL) that match `pattern`, and a connection to it.
    pub async fn keys_on_node(
        node: &str,
        pattern: &str,
    ) -> (Vec<String>, redis::aio::MultiplexedConnection) {
        let client = redis::Client::open(node.trim()).expect("a node URL");
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (_, keys): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(100_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        (keys, conn)
    }

    /// The Redis Cluster that tests use: `PRESENCE_TEST_REDIS_CLUSTER_URL` (its nodes,
    /// separated by commas), or `None` (the Cluster runs are then skipped, and say so).
    pub fn cluster_url() -> Option<String> {
        std::env::var("PRESENCE_TEST_REDIS_CLUSTER_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
mod groups_tests;
#[cfg(test)]
mod orphans_tests;
#[cfg(test)]
mod touch_tests;
#[cfg(test)]
mod turns_tests;
