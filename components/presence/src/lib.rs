//! # leptos_presence
//!
//! Realtime presence for Leptos: who else is in the room right now, what each is doing, and when
//! the absent were last seen.
//!
//! * [`api`]: the server functions (`/api/presence/heartbeat`, `/list`, `/update`, `/disconnect`),
//!   usable from any HTTP client (see the README's protocol section).
//! * `ssr` (feature `ssr`): mounting the engine into an axum app with one call, and the live
//!   subscription (`/api/presence/subscribe`, a WebSocket of snapshot-then-diffs).
//! * The engine, wire types and errors come from [`presence_core`], re-exported here.
//!
//! Mounting on the server (after `leptos_routes`, so its layers cover the server functions):
//!
//! ```ignore
//! use leptos_presence::ssr::{Presence, PresenceConfig, PresenceRouterExt};
//! let app = Router::new()
//!     .leptos_routes(&leptos_options, routes, move || shell(leptos_options.clone()))
//!     .with_presence(Presence::start(PresenceConfig::default()))
//!     .fallback(leptos_axum::file_and_error_handler(shell))
//!     .with_state(leptos_options);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
#[cfg(feature = "hydrate")]
mod client;
mod error;
mod face_pile;
mod store;
mod use_presence;

#[cfg(feature = "ssr")]
pub mod ssr;

pub use error::ApiError;
pub use face_pile::{FacePile, RoomFacePile};
pub use presence_core::error::Field;
pub use presence_core::wire::{
    HeartbeatResponse, LeaveReason, RoomMessage, RoomSnapshot, SessionPresence, SessionStatus,
    UserPresence,
};
pub use presence_core::{limits, validate, PresenceError, RoomView};
pub use store::UserEntry;
pub use use_presence::{
    use_presence, use_presence_with_options, ConnectionStatus, OtherSession, UsePresenceOptions,
    UsePresenceReturn,
};

/// The path prefix of every presence endpoint.
pub const API_PREFIX: &str = "/api/presence";
/// The live subscription's path (a WebSocket).
pub const SUBSCRIBE_PATH: &str = "/api/presence/subscribe";
