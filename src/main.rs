//! The demo server: Leptos SSR plus presence, in a few lines.
#![recursion_limit = "256"]

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    use axum::Router;
    use leptos::prelude::*;
    use leptos_axum::{generate_route_list, LeptosRoutes};
    use leptos_presence::ssr::{Presence, PresenceConfig, PresenceRouterExt};
    use presence_demo::app::{shell, App};

    let conf = get_configuration(None).expect("leptos configuration");
    let leptos_options = conf.leptos_options;
    let addr = leptos_options.site_addr;
    let routes = generate_route_list(App);
    let mut config = PresenceConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    // The demo lets anyone try "appear offline" (PRESENCE_ALLOW_INVISIBLE=0 to forbid it).
    if std::env::var_os("PRESENCE_ALLOW_INVISIBLE").is_none() {
        config.allow_invisible = true;
    }
    // In memory, or shared through Redis when PRESENCE_REDIS_URL is set.
    let presence = Presence::open(config)
        .await
        .unwrap_or_else(|e| panic!("presence: {e}"));
    println!("presence store: {}", presence.store_name());

    let app = Router::new().leptos_routes(&leptos_options, routes, {
        let options = leptos_options.clone();
        move || shell(options.clone())
    });
    // PRESENCE_DEMO_AUTH=1: identities come from the demo's sign-in cookie.
    let app = if presence_demo::auth::ssr::enabled() {
        app.with_presence_auth(presence, presence_demo::auth::ssr::hook())
    } else {
        app.with_presence(presence)
    };
    let app = app
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    println!("listening on http://{addr}");
    // Connect info lets presence rate-limit per client address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .expect("server");
}

#[cfg(not(feature = "ssr"))]
pub fn main() {
    // The browser entry point is `hydrate` in lib.rs.
}
