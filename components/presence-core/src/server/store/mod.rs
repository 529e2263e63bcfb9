//! What a store is: the one interface the memory store and the Redis store each implement.
//! [`crate::server::Presence`] is a handle over one of them; what does not depend on the store (the
//! configuration's edge settings: trusted proxies, allowed origins, socket caps) it answers
//! from the configuration itself.

use super::config::PresenceConfig;
use super::subscription::{Changes, Hold, SharedMessage, Subscription};
use crate::error::PresenceError;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, RoomSnapshot, UserStatus};
use serde_json::Value;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// A store's answer: at once (memory) or after a round trip (Redis).
pub(crate) type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, PresenceError>> + Send + 'a>>;

/// Wraps an answer that is already there.
pub(crate) fn ready<'a, T: Send + 'a>(answer: Result<T, PresenceError>) -> Answer<'a, T> {
    Box::pin(std::future::ready(answer))
}

/// The operations of a presence store. `as_user`, where it appears, is an authenticated caller:
/// a session of another user is refused with `Forbidden` and nothing changes.
pub(crate) trait Store: Send + Sync + std::fmt::Debug {
    /// `"memory"` or `"redis"`.
    fn name(&self) -> &'static str;
    /// The configuration the store was opened with.
    fn config(&self) -> &PresenceConfig;
    /// The store's clock, in ms since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Counts one request from a client address against `address_rate`.
    fn check_address(&self, address: IpAddr) -> Result<(), PresenceError>;
    fn heartbeat<'a>(&'a self, request: &'a HeartbeatRequest) -> Answer<'a, HeartbeatResponse>;
    fn update_state<'a>(
        &'a self,
        session_token: &'a str,
        state: Value,
        as_user: Option<&'a str>,
    ) -> Answer<'a, ()>;
    fn set_away<'a>(&'a self, session_token: &'a str, away: bool) -> Answer<'a, ()>;
    fn disconnect<'a>(&'a self, session_token: &'a str, as_user: Option<&'a str>)
        -> Answer<'a, ()>;
    /// The session's page is going: it ends after the leave grace unless it heartbeats first.
    fn going<'a>(&'a self, session_token: &'a str, as_user: Option<&'a str>) -> Answer<'a, ()>;
    fn list<'a>(&'a self, room_token: &'a str) -> Answer<'a, RoomSnapshot>;
    fn list_shared<'a>(&'a self, room_token: &'a str) -> Answer<'a, Arc<SharedMessage>>;
    fn list_room<'a>(&'a self, room: &'a str) -> Answer<'a, RoomSnapshot>;
    /// Without waiting on I/O; `None` if the store cannot tell that way.
    fn list_room_now(&self, room: &str) -> Option<RoomSnapshot>;
    fn list_user<'a>(&'a self, user: &'a str) -> Answer<'a, Vec<String>>;
    /// Each user's status across every room, in the order asked (ids checked).
    fn users_status<'a>(&'a self, users: &'a [String]) -> Answer<'a, Vec<UserStatus>>;
    fn remove_room_user<'a>(&'a self, room: &'a str, user: &'a str) -> Answer<'a, bool>;
    fn remove_room<'a>(&'a self, room: &'a str) -> Answer<'a, bool>;
    fn room_token(&self, room: &str) -> Result<String, PresenceError>;
    /// The room a room token grants (checked), or `InvalidRoomToken`.
    fn verify_room_token(&self, room_token: &str) -> Result<String, PresenceError>;
    fn subscribe<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Subscription>;
    /// A hold on the room (and session) like a subscription's, without its messages.
    fn hold<'a>(
        &'a self,
        room_token: &'a str,
        session_token: Option<&'a str>,
        as_user: Option<&'a str>,
    ) -> Answer<'a, Hold>;
    fn changes(&self) -> Changes;
    /// Whether nothing is due at the store's time, or being acted on (for tests that move the
    /// clock and then wait for the store to catch up).
    #[cfg(all(test, feature = "redis"))]
    fn settled(&self) -> Answer<'_, bool>;
}
