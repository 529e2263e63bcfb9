//! A presence server for load tests: the real server functions and subscription, plus two
//! baselines in the same process: a server function of the same shape that does nothing
//! (`/api/bench/noop`) and a bare axum handler (`/noop`).

use crate::args::Args;
use axum::routing::{any, post};
use axum::Router;
use leptos::prelude::*;
use leptos_presence::ssr::{Presence, PresenceConfig, PresenceRouterExt};
use leptos_presence::{ApiError, HeartbeatResponse};
use serde_json::Value;

/// The heartbeat's twin that never touches the engine: same arguments, same encoding, a
/// response of the same shape and size.
#[allow(clippy::too_many_arguments)]
#[server(name = BenchNoop, prefix = "/api/bench", endpoint = "noop", input = leptos::server_fn::codec::Json)]
pub async fn noop(
    room: String,
    user: String,
    session: String,
    name: String,
    interval_ms: Option<u64>,
    state: Option<Value>,
    away: Option<bool>,
    session_token: Option<String>,
) -> Result<HeartbeatResponse, ApiError> {
    let _ = (session, name, state, away);
    Ok(HeartbeatResponse::new(
        user,
        session_token.unwrap_or_default(),
        format!("{}.{room}", "0".repeat(32)),
        false,
        interval_ms.unwrap_or(10_000),
        1_800_000_000_000,
    ))
}

pub fn router(presence: Presence) -> Router {
    server_fn::axum::register_explicit::<BenchNoop>();
    Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .route("/noop", post(|| async { "null" }))
        .with_presence(presence)
}

pub async fn run(args: &Args) -> Result<(), String> {
    let port = args.num("port", 3500)?;
    let config = PresenceConfig::from_env().map_err(|e| e.to_string())?;
    // In memory, or in Redis when PRESENCE_REDIS_URL is set.
    let presence = Presence::open(config).await.map_err(|e| e.to_string())?;
    println!("presence store: {}", presence.store_name());
    let app = router(presence);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    println!("listening on http://127.0.0.1:{port}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
    .map_err(|e| e.to_string())
}
