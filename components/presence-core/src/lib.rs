//! # presence-core
//!
//! The engine behind `leptos_presence`: who is in a room right now, what each session is doing, and
//! when the absent were last seen. It knows nothing of Leptos or HTTP.
//!
//! * The wire types ([`wire`]), errors ([`PresenceError`]), input limits ([`limits`]) and the
//!   client-side [`RoomView`] compile everywhere, including `wasm32-unknown-unknown`.
//! * The engine itself ([`server`]: registry, deadline queue, tokens, subscriptions) is behind the
//!   `server` feature and needs tokio.
//!
//! ## Features
//!
//! | feature | what |
//! |---|---|
//! | (none) | wire types, errors, limits, validation, [`RoomView`]: compiles to `wasm32` |
//! | `server` | the engine with the in-memory store (tokio) |
//! | `redis` | the Redis store, so several app servers share rooms (redis-rs); implies `server` |
//!
//! ## Model
//! A **room** holds **users**; a user holds **sessions** (one per browser tab). A user is online
//! while any of its sessions lives. When the last one ends the user stays listed as offline with
//! `last_seen`, for a bounded time and up to a bounded count per room. Each session carries a display
//! name, a status (active, away or idle, with `idle_since`) and
//! optional app-defined JSON state.
//!
//! ```
//! use presence_core::{RoomView, wire::{RoomMessage, RoomSnapshot}};
//!
//! let mut view = RoomView::default();
//! view.apply(RoomMessage::Snapshot(RoomSnapshot::new("r1", 0, vec![])));
//! assert!(view.users().is_empty());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod limits;
pub mod room_view;
pub mod validate;
pub mod wire;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;

pub use error::PresenceError;
pub use room_view::RoomView;
