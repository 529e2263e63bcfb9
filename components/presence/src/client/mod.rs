//! The browser side of `use_presence` (features `hydrate` and `csr`).
//!
//! [`machine`] makes every decision and is tested natively; [`driver`] carries its commands out
//! with timers, `fetch` ([`http`]), a WebSocket and page events.

#[cfg(any(feature = "hydrate", feature = "csr"))]
mod driver;
#[cfg(any(feature = "hydrate", feature = "csr"))]
pub(crate) mod http;
pub(crate) mod machine;

#[cfg(any(feature = "hydrate", feature = "csr"))]
pub(crate) use driver::{start, Setup};
