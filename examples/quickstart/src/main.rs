//! The server: Leptos' start-axum `main`, with presence mounted after `leptos_routes`.
#![recursion_limit = "256"]

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use axum::Router;
    use leptos::prelude::*;
    use leptos_axum::{generate_route_list, LeptosRoutes};
    use presence_quickstart::app::{shell, App};

    let conf = get_configuration(None)?;
    let leptos_options = conf.leptos_options;
    let addr = leptos_options.site_addr;
    let routes = generate_route_list(App);

    use leptos_presence::ssr::{Presence, PresenceConfig, PresenceRouterExt};

    // In memory, or in Redis when PRESENCE_REDIS_URL is set (feature `redis`).
    let presence = Presence::open(PresenceConfig::from_env()?).await?;
    let app = Router::new()
        .leptos_routes(&leptos_options, routes, {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .with_presence(presence)
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    // Connect info lets presence rate-limit per client address.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).await?;
    Ok(())
}

#[cfg(not(feature = "ssr"))]
pub fn main() {
    // The browser entry point is `hydrate` in lib.rs.
}
