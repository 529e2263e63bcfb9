//! The browser side of `use_presence` (features `hydrate` and `csr`).
//!
//! [`machine`] makes every decision and is tested natively; [`driver`] carries its commands out
//! with timers, `fetch` ([`http`]), a WebSocket ([`socket_route`] says where its events go) and
//! page events.

#[cfg(any(feature = "hydrate", feature = "csr"))]
mod driver;
#[cfg(any(feature = "hydrate", feature = "csr"))]
pub(crate) mod http;
pub(crate) mod machine;
pub(crate) mod socket_route;

#[cfg(any(feature = "hydrate", feature = "csr"))]
pub(crate) use driver::{start, Setup};
