//! A client-side-rendered app (no SSR) whose presence server is elsewhere.
//!
//! Open `index.html?server=http://127.0.0.1:3000&room=lobby&name=Ada`. The server must list
//! this page's origin: `PRESENCE_ALLOWED_ORIGINS=http://127.0.0.1:8080` (for example).

use leptos::prelude::*;
use leptos_presence::{use_presence_with_options, FacePile, UsePresenceOptions};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::wasm_bindgen;

#[derive(Serialize, Deserialize, Clone, Default)]
struct Cursor {
    section: String,
}

/// Where the presence server is, which room, and who: from this page's query string.
fn query(key: &str, default: &str) -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok())
        .and_then(|params| params.get(key))
        .unwrap_or_else(|| default.to_string())
}

#[component]
fn App() -> impl IntoView {
    let server = query("server", "http://127.0.0.1:3000");
    let presence = use_presence_with_options(
        query("room", "lobby"),
        query("name", "Guest"),
        UsePresenceOptions::default()
            .server_url(server)
            .initial_state(&Cursor {
                section: "intro".into(),
            }),
    );
    let (status, error, others) = (presence.status, presence.error, presence.others);
    let set = presence.clone();
    view! {
        <main>
            <h1>"Presence, client-side rendered"</h1>
            <p data-connection-status=move || status.get().as_str()>
                {move || status.get().as_str()}
            </p>
            <p class="error">{move || error.get().map(|e| e.to_string())}</p>
            <FacePile presence=presence.clone()/>
            <button on:click=move |_| set.set_state(&Cursor { section: "faq".into() })>
                "Go to FAQ"
            </button>
            <For each=move || others.get() key=|s| s.session_id.clone() let:s>
                <p class="other">
                    {let s = s.clone(); move || s.name()} " is in "
                    {move || s.state_as::<Cursor>().map(|c| c.section)}
                </p>
            </For>
        </main>
    }
}

/// Mounts the app when the wasm module loads.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
