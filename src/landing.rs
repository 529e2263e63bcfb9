//! `/`: pick a display name and a room.

use crate::app::use_hydrated;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

/// The landing page.
#[component]
pub fn Landing() -> impl IntoView {
    let hydrated = use_hydrated();
    let name = RwSignal::new(String::new());
    let room = RwSignal::new("lobby".to_string());
    let navigate = use_navigate();
    let sign_in_mode = crate::app::demo_config().sign_in;
    let failed = RwSignal::new(None::<String>);
    let join = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (name, room) = (name.get_untracked(), room.get_untracked());
        if name.trim().is_empty() || room.trim().is_empty() {
            return;
        }
        let url = room_url(room.trim(), name.trim());
        let navigate = navigate.clone();
        if sign_in_mode {
            // Sign in first: the server then stamps this name on every heartbeat.
            leptos::task::spawn_local(async move {
                match crate::auth::sign_in(name).await {
                    Ok(()) => navigate(&url, Default::default()),
                    Err(e) => failed.set(Some(e.to_string())),
                }
            });
        } else {
            navigate(&url, Default::default());
        }
    };
    view! {
        <main class="page landing" data-hydrated=move || hydrated.get().to_string()>
            <header class="hero">
                <h1>"leptos-presence"</h1>
                <p class="lede">
                    "Who else is here, what they are doing, and when the absent were last seen. "
                    "Open a room in two windows to see it."
                </p>
            </header>
            <form class="card join-form" on:submit=join>
                <label>
                    <span>"Your name"</span>
                    <input
                        name="name"
                        required
                        maxlength="64"
                        autocomplete="nickname"
                        placeholder="Ada Lovelace"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    <span>"Room"</span>
                    <input
                        name="room"
                        required
                        maxlength="128"
                        prop:value=move || room.get()
                        on:input=move |ev| room.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" class="primary">
                    {if sign_in_mode { "Sign in and join" } else { "Join room" }}
                </button>
                {move || failed.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </form>
        </main>
    }
}

/// `/rooms/{room}?name={name}`, percent-encoded.
pub fn room_url(room: &str, name: &str) -> String {
    format!("/rooms/{}?name={}", encode(room), encode(name))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
