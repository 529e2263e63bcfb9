//! Server side (feature `ssr`): mounting the engine into an axum app, and the live subscription.

mod auth;
mod body_timeout;
mod cors;
mod heartbeat;
mod mount;
mod sockets;
mod subscribe;
mod websocket;

pub(crate) use auth::{caller, may_read_room};
pub use auth::{Identity, PresenceAuth};
pub(crate) use heartbeat::HeartbeatBody;

pub use mount::{engine, register_server_fns, PresenceRouterExt, BODY_TIMEOUT, MAX_BODY_BYTES};
pub use presence_core::server::{
    Agent, AgentOptions, Changes, Clock, ConfigError, ManualClock, MemoryPresence, Occupancy,
    Presence, PresenceConfig, RateLimit, RoomChange, SystemClock,
};

use crate::ApiError;
use presence_core::PresenceError;

/// Turns an engine result into a server-function result, setting the HTTP status of an error.
pub(crate) fn respond<T>(result: Result<T, PresenceError>) -> Result<T, ApiError> {
    result.map_err(fail)
}

/// Sets the response status for `error` (when inside a server function) and wraps it.
pub(crate) fn fail(error: PresenceError) -> ApiError {
    if let Some(options) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = axum::http::StatusCode::from_u16(error.status()) {
            options.set_status(status);
        }
    }
    ApiError(error)
}

/// The JSON body of an error: its tagged form (`{"code": …, …}`) plus a human `message`.
pub(crate) fn error_body(error: &PresenceError) -> Vec<u8> {
    let mut value = serde_json::to_value(error).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("message".into(), error.to_string().into());
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The caller's address for the per-address limit, when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the connection's, or, behind a trusted
/// proxy, the one it forwarded (see [`presence_core::server::client_address`]).
pub(crate) fn client_address(presence: &Presence) -> Option<std::net::IpAddr> {
    leptos::prelude::with_context::<axum::http::request::Parts, _>(|parts| {
        address_of(presence, parts)
    })
    .flatten()
}

/// [`client_address`] of a request's parts.
pub(crate) fn address_of(
    presence: &Presence,
    parts: &axum::http::request::Parts,
) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(presence_core::server::client_address(
        peer,
        forwarded,
        presence.trusted_proxies(),
    ))
}

/// Counts this request against its client address's rate, if the address is known.
pub(crate) fn check_address(presence: &Presence) -> Result<(), ApiError> {
    match client_address(presence) {
        Some(address) => respond(presence.check_address(address)),
        None => Ok(()),
    }
}

/// The room's list for the page being rendered, if this request may read it (the rule of
/// [`auth::may_read_room`]: with an auth hook, only a caller it knows, in a room it allows) and its
/// address is within its rate (a page render costs like a `list`). `None`: render without it; the
/// browser fills the list in once it joins.
pub(crate) fn first_paint(room: &str) -> Option<(presence_core::wire::RoomSnapshot, u64, usize)> {
    use leptos::prelude::{use_context, with_context};
    let presence = use_context::<Presence>().or_else(|| {
        with_context::<axum::http::request::Parts, _>(|p| p.extensions.get::<Presence>().cloned())
            .flatten()
    })?;
    presence_core::validate::id(presence_core::error::Field::Room, room).ok()?;
    let allowed =
        with_context::<axum::http::request::Parts, _>(|parts| may_read_room(parts, room))?;
    if !allowed {
        return None;
    }
    if let Some(address) = client_address(&presence) {
        presence.check_address(address).ok()?;
    }
    Some((
        presence.list_room_now(room)?,
        presence.now_ms(),
        presence.summary_above(),
    ))
}
