//! The page shell and routes.

use crate::landing::Landing;
use crate::room::RoomPage;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The demo app.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/presence-demo.css"/>
        <Title text="leptos-presence demo"/>
        <Router>
            <Routes fallback=|| view! { <p class="page">"Nothing here. " <a href="/">"Start over"</a></p> }>
                <Route path=path!("/") view=Landing/>
                <Route path=path!("/rooms/:room") view=RoomPage/>
            </Routes>
        </Router>
    }
}

/// True once the page has hydrated (an effect runs only in the browser): tests wait for it.
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

/// Settings handed from the server's environment to the page (so tests can use short intervals
/// without rebuilding): heartbeat intervals, and whether sign-in mode is on.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct DemoConfig {
    /// `PRESENCE_INTERVAL_MS` (default 10 s).
    pub interval_ms: u64,
    /// `PRESENCE_HIDDEN_INTERVAL_MS` (default 60 s).
    pub hidden_interval_ms: u64,
    /// `PRESENCE_IDLE_AFTER_MS` (default 5 min; 0: never idle).
    pub idle_after_ms: u64,
    /// `PRESENCE_DEMO_AUTH=1`.
    pub sign_in: bool,
    /// True when rooms live in Redis (`PRESENCE_REDIS_URL`), shared with other servers.
    pub shared_store: bool,
    /// This server's port (from `LEPTOS_SITE_ADDR`), to tell servers apart in the page.
    pub port: u16,
}

/// The demo's settings: read on the server, serialized into the page for hydration.
pub fn demo_config() -> DemoConfig {
    SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            let read = |name: &str, default: u64| {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(default)
            };
            DemoConfig {
                interval_ms: read("PRESENCE_INTERVAL_MS", 10_000),
                hidden_interval_ms: read("PRESENCE_HIDDEN_INTERVAL_MS", 60_000),
                idle_after_ms: read("PRESENCE_IDLE_AFTER_MS", 300_000),
                sign_in: crate::auth::ssr::enabled(),
                shared_store: std::env::var("PRESENCE_REDIS_URL").is_ok_and(|u| !u.is_empty()),
                port: std::env::var("LEPTOS_SITE_ADDR")
                    .ok()
                    .and_then(|a| a.rsplit(':').next()?.parse().ok())
                    .unwrap_or(3000),
            }
        }
        #[cfg(not(feature = "ssr"))]
        DemoConfig {
            interval_ms: 10_000,
            hidden_interval_ms: 60_000,
            idle_after_ms: 300_000,
            sign_in: false,
            shared_store: false,
            port: 0,
        }
    })
    .into_inner()
}
