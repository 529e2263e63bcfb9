//! The presence engine (feature `server`): a registry of rooms, users and sessions, a deadline
//! queue that one scheduler task sleeps on, unguessable tokens, and per-room subscriptions.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use presence_core::server::{Presence, PresenceConfig};
//! use presence_core::wire::HeartbeatRequest;
//!
//! let presence = Presence::start(PresenceConfig::default());
//! let joined = presence.heartbeat(&HeartbeatRequest {
//!     room: "lobby".into(), user: "ada".into(), session: "tab-1".into(), name: "Ada".into(),
//!     interval_ms: None, state: None, away: false, session_token: None,
//! }).unwrap();
//! assert!(joined.joined);
//! let snapshot = presence.list(&joined.room_token).unwrap();
//! assert_eq!(snapshot.users[0].name, "Ada");
//! presence.disconnect(&joined.session_token).unwrap();
//! assert!(!presence.list(&joined.room_token).unwrap().users[0].online);
//! # });
//! ```

mod clock;
mod config;
mod deadlines;
mod presence;
mod rate;
mod registry;
mod room;
mod subscription;
mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, PresenceConfig, RateLimit};
pub use presence::{HeartbeatAck, Presence};
pub use subscription::{SharedMessage, Subscription};
pub use token::{RoomTokenKey, SessionToken};
