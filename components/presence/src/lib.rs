//! # leptos_presence
//!
//! Realtime presence for Leptos: who else is in the room right now, what each is doing, and when
//! the absent were last seen.
//!
//! In a component, join a room and show who is there:
//!
//! ```
//! use leptos::prelude::*;
//! use leptos_presence::{use_presence, FacePile};
//!
//! #[component]
//! fn Header() -> impl IntoView {
//!     let presence = use_presence("design-review", "Ada");
//!     view! { <FacePile presence=presence/> }
//! }
//! ```
//!
//! On the server, mount the engine once, after `leptos_routes` (its layers must cover the server
//! functions `leptos_routes` registers):
//!
//! ```no_run
//! # #[cfg(feature = "ssr")]
//! # async fn mount(
//! #     leptos_options: leptos::config::LeptosOptions,
//! #     routes: Vec<leptos_axum::AxumRouteListing>,
//! #     shell: fn(leptos::config::LeptosOptions) -> leptos::prelude::AnyView,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::Router;
//! use leptos_axum::LeptosRoutes;
//! use leptos_presence::ssr::{Presence, PresenceConfig, PresenceRouterExt};
//!
//! // In memory, or in Redis when PRESENCE_REDIS_URL is set (feature `redis`).
//! let presence = Presence::open(PresenceConfig::from_env()?).await?;
//! let app: Router = Router::new()
//!     .leptos_routes(&leptos_options, routes, {
//!         let options = leptos_options.clone();
//!         move || shell(options.clone())
//!     })
//!     .with_presence(presence)
//!     .fallback(leptos_axum::file_and_error_handler(shell))
//!     .with_state(leptos_options);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! * [`use_presence`] / [`use_presence_with_options`]: join a room; signals of everyone in it.
//! * [`FacePile`]: the faces, with their own CSS, tooltips and an accessible list.
//! * [`api`]: the server functions (`/api/presence/heartbeat`, `/list`, `/update`, `/disconnect`, `/going`),
//!   usable from any HTTP client (see the README's protocol section).
//! * `ssr` (feature `ssr`): mounting the engine into an axum app with one call, the auth hook,
//!   and the live subscription (`/api/presence/subscribe`, a WebSocket of snapshot-then-diffs).
//! * The engine, wire types and errors come from [`presence_core`], re-exported here.
//!
//! ## Features
//!
//! | feature | what |
//! |---|---|
//! | `hydrate` | the browser side: heartbeats, the live stream, saying it is going on unload (the app's `hydrate` feature turns it on) |
//! | `csr` | the same browser side for a client-side-rendered app (no SSR), talking to a presence server that may be on another origin ([`UsePresenceOptions::server_url`]) |
//! | `ssr` | the server side: `ssr::PresenceRouterExt::with_presence`, the server functions, the subscription |
//! | `redis` | the Redis store, so several app servers share rooms; implies `ssr` |
//!
//! With none of `hydrate`, `csr` and `ssr` the crate still compiles (the hook is inert), so shared
//! component code needs no `cfg`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
mod client;
mod error;
mod face_pile;
mod socket_join;
mod store;
mod use_presence;

#[cfg(feature = "ssr")]
#[cfg_attr(docsrs, doc(cfg(feature = "ssr")))]
pub mod ssr;

pub use error::ApiError;
pub use face_pile::{FacePile, FacePileLabels, LabelFormat, RoomFacePile};
pub use presence_core::error::Field;
pub use presence_core::wire::{
    HeartbeatResponse, LeaveReason, PresenceKind, RoomCounts, RoomMessage, RoomPage, RoomSnapshot,
    RoomSummary, SessionPresence, SessionStatus, UserHead, UserPresence, UserStatus,
};
pub use presence_core::{limits, validate, PresenceError, RoomView};
pub use store::{OtherSession, SessionEntry, UserEntry};
pub use use_presence::{
    use_presence, use_presence_with_options, ConnectionStatus, ListMode, UsePresenceOptions,
    UsePresenceReturn,
};

/// The path prefix of every presence endpoint.
pub const API_PREFIX: &str = "/api/presence";
/// The live subscription's path (a WebSocket).
pub const SUBSCRIBE_PATH: &str = "/api/presence/subscribe";
