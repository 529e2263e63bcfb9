//! The page: a room at `/rooms/{room}?name={name}`, with the README's `Room` component.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::{use_params_map, use_query_map};
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

/// The app: one route, a room.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Presence quick start"/>
        <Router>
            <main>
                <Routes fallback=|| "Open /rooms/lobby?name=Ada">
                    <Route path=path!("/rooms/:room") view=RoomPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The room and the name come from the URL.
#[component]
fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let room = Signal::derive(move || params.with(|p| p.get("room").unwrap_or_default()));
    let name = Signal::derive(move || query.with(|q| q.get("name").unwrap_or("Guest".into())));
    view! { <Room room=room name=name/> }
}

// ---- From here on, the README's quick start, as it is there. ----

use leptos_presence::{use_presence_with_options, FacePile, UsePresenceOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Default)]
struct Cursor {
    section: String,
    typing: bool,
}

#[component]
fn Room(room: Signal<String>, name: Signal<String>) -> impl IntoView {
    let presence = use_presence_with_options(
        room,
        name,
        UsePresenceOptions::default().initial_state(&Cursor {
            section: "intro".into(),
            typing: false,
        }),
    );
    let others = presence.others; // every session but this tab's
    let set = presence.clone();
    view! {
        <FacePile presence=presence.clone() max_visible=5 size=32/>
        <button on:click=move |_| set.set_state(&Cursor { section: "faq".into(), typing: false })>
            "FAQ"
        </button>
        // Keyed by session: a row stays while its session changes; the closures update it.
        <For each=move || others.get() key=|s| s.session_id.clone() let:s>
            <p>
                {let s = s.clone(); move || s.name()} " is in "
                {move || s.state_as::<Cursor>().map(|c| c.section)}
            </p>
        </For>
    }
}
