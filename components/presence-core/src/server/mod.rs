//! The presence engine (feature `server`): rooms, users and sessions in a store — in memory (a
//! registry and a deadline queue that one scheduler task sleeps on) or, with the `redis` feature,
//! in Redis shared by several servers — plus unguessable tokens and per-room subscriptions.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use presence_core::server::{Presence, PresenceConfig};
//! use presence_core::wire::HeartbeatRequest;
//!
//! // In memory unless `redis_url` is set (PRESENCE_REDIS_URL with `PresenceConfig::from_env`).
//! let presence = Presence::open(PresenceConfig::default()).await.unwrap();
//! let joined = presence.heartbeat(&HeartbeatRequest::new("lobby", "ada", "tab-1", "Ada")).await.unwrap();
//! assert!(joined.joined);
//! let snapshot = presence.list(&joined.room_token).await.unwrap();
//! assert_eq!(snapshot.users[0].name, "Ada");
//! presence.disconnect(&joined.session_token).await.unwrap();
//! assert!(!presence.list(&joined.room_token).await.unwrap().users[0].online);
//! # });
//! ```

mod agent;
mod client_address;
mod clock;
mod config;
mod presence;
mod rate;
mod rules;
mod stall;
mod store;
mod subscription;
mod summary;
mod token;

pub use agent::{Agent, AgentOptions};
pub use client_address::{client_address, limit_key};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, PresenceConfig, RateLimit};
pub use presence::Presence;
pub use store::memory::{HeartbeatAck, MemoryPresence};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::RedisPresence;
pub use subscription::{
    Changes, Encoded, Encoding, Occupancy, RoomChange, SharedMessage, Subscription,
};
pub use summary::{Feed, SummaryOptions, SummarySubscription, View};
pub use token::{RoomTokenKey, SessionToken};

/// A hash map with a fast, randomly seeded (collision-attack resistant) hasher.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[cfg(test)]
mod behaviour_tests;
#[cfg(test)]
mod test_support;
