//! The engine handle apps use: one API over the store chosen by configuration.
//!
//! Two stores implement [`super::store::Store`]: [`MemoryPresence`] (the embedded default: one
//! process, no I/O) and, with the `redis` feature, [`super::RedisPresence`] (several servers
//! share rooms through one Redis). What does not depend on the store (the configuration's edge
//! settings) is answered here from the configuration.

use super::clock::{Clock, SystemClock};
use super::config::PresenceConfig;
use super::store::memory::MemoryPresence;
use super::store::Store;
use super::subscription::{Changes, SharedMessage, Subscription};
use super::summary::{
    subscribe_summary, Feed, Summaries, SummaryOptions, SummarySubscription, View,
};
use crate::error::PresenceError;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, RoomSnapshot, UserStatus};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// A presence engine over the configured store. Cheap to clone.
///
/// Methods are `async` because a shared store answers over the network; with the in-memory
/// store they never wait.
#[derive(Clone, Debug)]
pub struct Presence {
    store: Arc<dyn Store>,
    /// This server's room summarizers (for summary subscriptions).
    summaries: Arc<Summaries>,
    /// The same store, when it is the in-memory one (for its synchronous API).
    memory: Option<MemoryPresence>,
}

impl From<MemoryPresence> for Presence {
    fn from(memory: MemoryPresence) -> Self {
        Presence {
            summaries: Arc::new(Summaries::new(memory.config().summary_window_ms)),
            store: Arc::new(memory.clone()),
            memory: Some(memory),
        }
    }
}

#[cfg(feature = "redis")]
impl From<super::store::redis::RedisPresence> for Presence {
    fn from(redis: super::store::redis::RedisPresence) -> Self {
        Presence {
            summaries: Arc::new(Summaries::new(redis.config().summary_window_ms)),
            store: Arc::new(redis),
            memory: None,
        }
    }
}

impl Presence {
    /// Starts an in-memory engine on the system clock. Must be called inside a tokio runtime.
    pub fn start(config: PresenceConfig) -> Self {
        MemoryPresence::start(config).into()
    }

    /// Starts an in-memory engine on the given clock (a [`super::ManualClock`] in tests).
    pub fn start_with_clock(config: PresenceConfig, clock: impl Clock) -> Self {
        MemoryPresence::start_with_clock(config, clock).into()
    }

    /// Opens the store `config` names: Redis when `redis_url` is set (feature `redis`),
    /// otherwise in memory.
    pub async fn open(config: PresenceConfig) -> Result<Self, PresenceError> {
        Self::open_with_clock(config, SystemClock::default()).await
    }

    /// [`Presence::open`] on the given clock.
    pub async fn open_with_clock(
        config: PresenceConfig,
        clock: impl Clock,
    ) -> Result<Self, PresenceError> {
        match config.redis_url.clone() {
            None => Ok(Self::start_with_clock(config, clock)),
            #[cfg(feature = "redis")]
            Some(url) => Ok(super::store::redis::RedisPresence::connect_with_clock(
                &url, config, clock,
            )
            .await?
            .into()),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(PresenceError::Unavailable {
                message: "PRESENCE_REDIS_URL is set but this build has no `redis` feature".into(),
            }),
        }
    }

    /// The in-memory store, if that is the one in use (for its synchronous API).
    pub fn memory(&self) -> Option<&MemoryPresence> {
        self.memory.as_ref()
    }

    /// Which store this is: `"memory"` or `"redis"`.
    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// Most live subscriptions one client address may hold on this server
    /// (`max_sockets_per_address`).
    pub fn max_sockets_per_address(&self) -> usize {
        self.store.config().max_sockets_per_address
    }

    /// Whether, without an auth hook, any client may be invisible
    /// ([`PresenceConfig::allow_invisible`]).
    pub fn allows_invisible(&self) -> bool {
        self.store.config().allow_invisible
    }

    /// Other origins whose pages may call presence (`allowed_origins`).
    pub fn allowed_origins(&self) -> &[String] {
        &self.store.config().allowed_origins
    }

    /// Above how many listed users an automatic subscription gets a summary
    /// ([`PresenceConfig::summary_above`](super::PresenceConfig::summary_above)).
    pub fn summary_above(&self) -> usize {
        self.store.config().summary_above
    }

    /// The engine's current time (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.store.now_ms()
    }

    /// The proxies whose `X-Forwarded-For` is believed (`PRESENCE_TRUSTED_PROXIES`); see
    /// [`super::client_address`].
    pub fn trusted_proxies(&self) -> &[IpAddr] {
        &self.store.config().trusted_proxies
    }

    /// Counts one request from a client address against `address_rate`. The HTTP layer calls it
    /// for heartbeats and updates; the engine cannot see addresses itself.
    pub fn check_address(&self, address: IpAddr) -> Result<(), PresenceError> {
        self.store.check_address(address)
    }

    /// Joins a room or keeps a session alive. The first heartbeat of a session (no token) creates
    /// it and returns its token; later ones must carry that token. A heartbeat that changes
    /// nothing but the deadline notifies nobody.
    pub async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, PresenceError> {
        self.store.heartbeat(request).await
    }

    /// Replaces a session's app-defined state (`null` clears it). One `Updated` if it changed.
    pub async fn update_state(
        &self,
        session_token: &str,
        state: Value,
    ) -> Result<(), PresenceError> {
        self.store.update_state(session_token, state, None).await
    }

    /// [`Presence::update_state`] on behalf of an authenticated `user`: refused with `Forbidden`
    /// (and nothing changes) if the session is someone else's.
    pub async fn update_state_as(
        &self,
        user: &str,
        session_token: &str,
        state: Value,
    ) -> Result<(), PresenceError> {
        self.store
            .update_state(session_token, state, Some(user))
            .await
    }

    /// Marks a session away (tab hidden) or active. One `Updated` if it changed.
    pub async fn set_away(&self, session_token: &str, away: bool) -> Result<(), PresenceError> {
        self.store.set_away(session_token, away).await
    }

    /// Ends a session now.
    pub async fn disconnect(&self, session_token: &str) -> Result<(), PresenceError> {
        self.store.disconnect(session_token, None).await
    }

    /// [`Presence::disconnect`] on behalf of an authenticated `user`: refused with `Forbidden`
    /// if the session is someone else's.
    pub async fn disconnect_as(
        &self,
        user: &str,
        session_token: &str,
    ) -> Result<(), PresenceError> {
        self.store.disconnect(session_token, Some(user)).await
    }

    /// The session's page is going (it unloads, or its component unmounts): the session ends
    /// after [`PresenceConfig::leave_grace_ms`] unless it heartbeats again first, so a reload or
    /// an in-app navigation is not a leave. When it ends, it leaves as `disconnected`, last seen at
    /// this call.
    pub async fn going(&self, session_token: &str) -> Result<(), PresenceError> {
        self.store.going(session_token, None).await
    }

    /// [`Presence::going`] on behalf of an authenticated `user`: refused with `Forbidden` if the
    /// session is someone else's.
    pub async fn going_as(&self, user: &str, session_token: &str) -> Result<(), PresenceError> {
        self.store.going(session_token, Some(user)).await
    }

    /// The room a room token grants, and its snapshot.
    pub async fn list(&self, room_token: &str) -> Result<RoomSnapshot, PresenceError> {
        self.store.list(room_token).await
    }

    /// [`Presence::list`] as the message every reader of this room version shares: built and
    /// serialized to JSON once per version, so a crowd of readers costs one snapshot.
    pub async fn list_shared(&self, room_token: &str) -> Result<Arc<SharedMessage>, PresenceError> {
        self.store.list_shared(room_token).await
    }

    /// A room's snapshot, without a token: for trusted server-side code (admin, tests).
    pub async fn list_room(&self, room: &str) -> Result<RoomSnapshot, PresenceError> {
        self.store.list_room(room).await
    }

    /// A room's snapshot for synchronous callers (server-side rendering), without waiting on
    /// I/O: the memory store's room; with Redis, the room as this server last relayed it to its
    /// subscribers, or `None` if nobody here watches it (render without it; the browser fills
    /// the list in once it joins).
    pub fn list_room_now(&self, room: &str) -> Option<RoomSnapshot> {
        self.store.list_room_now(room)
    }

    /// The rooms where `user` is online, sorted.
    pub async fn list_user(&self, user: &str) -> Result<Vec<String>, PresenceError> {
        self.store.list_user(user).await
    }

    /// Many users' status across every room at once, in the order asked: online anywhere, or
    /// when last seen (a chat app's member list). At most 1,000 ids; a bad id or too many is a
    /// typed error.
    pub async fn users_status<I, S>(&self, user_ids: I) -> Result<Vec<UserStatus>, PresenceError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ids: Vec<String> = user_ids.into_iter().map(Into::into).collect();
        self.store.users_status(&ids).await
    }

    /// Removes a user and its sessions from a room (subscribers get `Removed`). True if listed.
    pub async fn remove_room_user(&self, room: &str, user: &str) -> Result<bool, PresenceError> {
        self.store.remove_room_user(room, user).await
    }

    /// Removes everyone from a room. True if anyone was listed.
    pub async fn remove_room(&self, room: &str) -> Result<bool, PresenceError> {
        self.store.remove_room(room).await
    }

    /// The room token for `room`, for trusted server-side code that lets a page watch a room
    /// before it joins.
    pub fn room_token(&self, room: &str) -> Result<String, PresenceError> {
        self.store.room_token(room)
    }

    /// Subscribes to the room a room token grants. With the token of a session in that room, the
    /// subscription also holds the session: when the last such subscription closes, the session
    /// ends after `subscription_grace_ms` unless it heartbeats or resubscribes first.
    pub async fn subscribe(
        &self,
        room_token: &str,
        session_token: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        self.store.subscribe(room_token, session_token, None).await
    }

    /// Every change in every room, for server-side code: on-join / on-leave hooks, audit logs,
    /// occupancy counters. Yields each `joined`, `left`, `updated` and `removed` with its room,
    /// in order per room. With the Redis store every server's reader sees every server's changes
    /// (run side effects on one server, or de-duplicate by room and `seq`); changes made while
    /// this server was cut off from Redis are not replayed.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use presence_core::server::{Presence, PresenceConfig};
    /// use presence_core::wire::{HeartbeatRequest, RoomMessage};
    ///
    /// let presence = Presence::start(PresenceConfig::default());
    /// let mut changes = presence.changes();
    /// presence.heartbeat(&HeartbeatRequest::new("lobby", "ada", "tab-1", "Ada")).await.unwrap();
    /// let change = changes.next().await.unwrap();
    /// assert_eq!(&*change.room, "lobby");
    /// assert!(matches!(change.message.message(), RoomMessage::Joined { .. }));
    /// # });
    /// ```
    pub fn changes(&self) -> Changes {
        self.store.changes()
    }

    /// Whether the store has acted on everything due by now (tests move the clock, then wait).
    #[cfg(all(test, feature = "redis"))]
    pub(crate) async fn settled(&self) -> bool {
        self.store.settled().await.unwrap_or(false)
    }

    /// [`Presence::subscribe`] on behalf of an authenticated `user`: a session token, if given,
    /// must be that user's.
    pub async fn subscribe_as(
        &self,
        user: &str,
        room_token: &str,
        session_token: Option<&str>,
    ) -> Result<Subscription, PresenceError> {
        self.store
            .subscribe(room_token, session_token, Some(user))
            .await
    }

    /// Subscribes to a summary of the room a room token grants: its counts, its first users and,
    /// if `options` names one, a user's own entry, instead of everyone; coalesced over
    /// `summary_window_ms`. A session token holds the session as [`Presence::subscribe`] does.
    /// What it costs does not grow with the room: use it where a page shows a few faces and a
    /// count.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use presence_core::server::{Presence, PresenceConfig, SummaryOptions};
    /// use presence_core::wire::{HeartbeatRequest, RoomMessage};
    ///
    /// let presence = Presence::start(PresenceConfig::default());
    /// let ada = presence.heartbeat(&HeartbeatRequest::new("lobby", "ada", "tab-1", "Ada")).await.unwrap();
    /// let options = SummaryOptions::default().k(3).me("ada");
    /// let mut summary = presence.subscribe_summary(&ada.room_token, Some(&ada.session_token), options).await.unwrap();
    /// match summary.next().await.message() {
    ///     RoomMessage::Summary(s) => {
    ///         assert_eq!(s.counts.online, 1);
    ///         assert_eq!(s.first.as_ref().unwrap()[0].name, "Ada");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(matches!(summary.next().await.message(), RoomMessage::Me { user: Some(_), .. }));
    /// # });
    /// ```
    pub async fn subscribe_summary(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        options: SummaryOptions,
    ) -> Result<SummarySubscription, PresenceError> {
        self.summary_inner(room_token, session_token, None, options)
            .await
    }

    /// [`Presence::subscribe_summary`] on behalf of an authenticated `user`: a session token, if
    /// given, must be that user's; `options.me` defaults to `user`.
    pub async fn subscribe_summary_as(
        &self,
        user: &str,
        room_token: &str,
        session_token: Option<&str>,
        options: SummaryOptions,
    ) -> Result<SummarySubscription, PresenceError> {
        self.summary_inner(room_token, session_token, Some(user), options)
            .await
    }

    async fn summary_inner(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
        options: SummaryOptions,
    ) -> Result<SummarySubscription, PresenceError> {
        let options = self.checked_options(options, as_user)?;
        subscribe_summary(
            &self.store,
            &self.summaries,
            room_token,
            session_token,
            as_user,
            &options,
        )
        .await
    }

    /// Subscribes in the view asked for: [`View::Full`] as [`Presence::subscribe`],
    /// [`View::Summary`] as [`Presence::subscribe_summary`], or [`View::Auto`]: the full list
    /// while the room lists at most `summary_above` users, a summary above that (what the HTTP
    /// subscription does by default for `view=auto`).
    pub async fn feed(
        &self,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
        view: View,
    ) -> Result<Feed, PresenceError> {
        let view = match view {
            View::Summary(o) => View::Summary(self.checked_options(o, as_user)?),
            View::Auto(o) => View::Auto(self.checked_options(o, as_user)?),
            View::Full => View::Full,
        };
        Feed::open(
            self.store.clone(),
            self.summaries.clone(),
            room_token,
            session_token,
            as_user,
            view,
        )
        .await
    }

    fn checked_options(
        &self,
        mut options: SummaryOptions,
        as_user: Option<&str>,
    ) -> Result<SummaryOptions, PresenceError> {
        if let Some(user) = as_user {
            options.me.get_or_insert_with(|| user.to_string());
        }
        if let Some(me) = &options.me {
            crate::validate::id(crate::error::Field::User, me)?;
        }
        Ok(options)
    }

    /// How many rooms have a summarizer on this server (for tests).
    #[cfg(test)]
    pub(crate) fn live_summarizers(&self) -> usize {
        self.summaries.live()
    }
}
