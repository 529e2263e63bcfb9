//! `/rooms/{room}?name={name}`: the room, its faces, and what everyone is doing.

use crate::app::use_hydrated;
use leptos::prelude::*;
use leptos_presence::{use_presence_with_options, FacePile, SessionEntry, UsePresenceOptions};
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

/// What each session tells the others: where it is looking, and whether it is typing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DemoState {
    /// The section this session is looking at.
    pub section: String,
    /// True while typing in the shared box.
    pub typing: bool,
}

const SECTIONS: [(&str, &str); 3] = [
    ("intro", "Introduction"),
    ("agenda", "Agenda"),
    ("notes", "Notes"),
];

/// The room page: asks for a name if the URL has none.
#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let room = Signal::derive(move || params.with(|p| p.get("room").unwrap_or_default()));
    let name = Signal::derive(move || query.with(|q| q.get("name").unwrap_or_default()));
    let has_name = move || !name.with(|n| n.trim().is_empty());
    view! {
        <Show
            when=has_name
            fallback=move || view! { <AskName room=room/> }
        >
            <Room room=room name=name/>
        </Show>
    }
}

#[component]
fn AskName(room: Signal<String>) -> impl IntoView {
    let hydrated = use_hydrated();
    view! {
        <main class="page" data-hydrated=move || hydrated.get().to_string()>
            <form class="card join-form" method="get">
                <h1>"Join " {move || room.get()}</h1>
                <label>
                    <span>"Your name"</span>
                    <input name="name" required maxlength="64" autocomplete="nickname"/>
                </label>
                <button type="submit" class="primary">"Join"</button>
            </form>
        </main>
    }
}

#[component]
fn Room(room: Signal<String>, name: Signal<String>) -> impl IntoView {
    let hydrated = use_hydrated();
    let config = crate::app::demo_config();
    // `?invisible=1`: join invisible ("appear offline").
    let start_invisible =
        use_query_map().with_untracked(|q| q.get("invisible").is_some_and(|v| v == "1"));
    let presence = use_presence_with_options(
        room,
        name,
        UsePresenceOptions::default()
            .interval_ms(config.interval_ms)
            .hidden_interval_ms(config.hidden_interval_ms)
            .idle_after_ms(config.idle_after_ms)
            .invisible(start_invisible)
            .initial_state(&DemoState {
                section: "intro".into(),
                typing: false,
            }),
    );
    let mine = RwSignal::new(DemoState {
        section: "intro".into(),
        typing: false,
    });
    {
        let presence = presence.clone();
        Effect::new(move |first: Option<()>| {
            let state = mine.get();
            if first.is_some() {
                presence.set_state(&state);
            }
        });
    }
    // Typing ends 1.5 s after the last keystroke.
    let typing_timer = StoredValue::new(None::<leptos::prelude::TimeoutHandle>);
    let on_input = move |_| {
        mine.update(|s| s.typing = true);
        if let Some(h) = typing_timer.get_value() {
            h.clear();
        }
        let handle = set_timeout_with_handle(
            move || mine.update(|s| s.typing = false),
            std::time::Duration::from_millis(1_500),
        )
        .ok();
        typing_timer.set_value(handle);
    };
    let status = presence.status;
    let invisible = presence.invisible;
    let toggle_invisible = {
        let presence = presence.clone();
        move |ev: leptos::ev::Event| presence.set_invisible(event_target_checked(&ev))
    };
    let others = presence.others;
    let my_user = presence.user_id;
    let leave = {
        let presence = presence.clone();
        move |_| presence.leave()
    };
    let share = move || format!("/rooms/{}", room.get());
    let (store_label, store_text) = if config.shared_store {
        ("redis", "in Redis, shared with every server on it.")
    } else {
        ("memory", "in this server's memory.")
    };
    let error = presence.error;
    let invite = Action::new(|room: &String| crate::agent::invite_agent(room.clone()));
    let neighbours = move || {
        let here = room.get();
        ["lobby", "design", "standup"]
            .into_iter()
            .filter(|r| *r != here)
            .map(|r| {
                let href = crate::landing::room_url(r, &name.get());
                view! { <A href=href attr:class="room-link">{r}</A> }
            })
            .collect_view()
    };

    view! {
        <main class="page room" data-hydrated=move || hydrated.get().to_string()>
            <nav class="room-nav" aria-label="Rooms">
                <A href="/" attr:class="room-link home">"← Home"</A>
                <span class="muted">"Other rooms:"</span>
                {neighbours}
            </nav>
            <header class="room-header">
                <div>
                    <p class="eyebrow">"Room"</p>
                    <h1 class="room-title">{move || room.get()}</h1>
                    <p class="muted">
                        "Share " <a href=share>{share}</a> " to invite someone."
                    </p>
                    <p class="muted server-note" data-store=store_label>
                        "Served by port " {config.port} ", rooms kept " {store_text}
                    </p>
                </div>
                <div class="room-presence">
                    <FacePile presence=presence.clone() max_visible=5 size=36/>
                    <span
                        class="connection"
                        data-connection-status=move || status.get().as_str()
                        role="status"
                    >
                        {move || status.get().as_str()}
                    </span>
                    <label class="appear-offline">
                        <input
                            type="checkbox"
                            id="appear-offline"
                            prop:checked=move || invisible.get()
                            on:change=toggle_invisible
                        />
                        "Appear offline"
                    </label>
                </div>
            </header>

            {move || {
                error
                    .get()
                    .map(|e| view! { <p class="error" role="alert">"Cannot join: " {e.to_string()}</p> })
            }}
            <div class="room-grid">
                <section class="card">
                    <nav class="tabs" aria-label="Sections">
                        {SECTIONS
                            .iter()
                            .map(|(id, title)| {
                                let id = id.to_string();
                                let id2 = id.clone();
                                view! {
                                    <button
                                        type="button"
                                        class="tab"
                                        data-section=id.clone()
                                        aria-pressed=move || (mine.with(|s| s.section == id2)).to_string()
                                        on:click=move |_| mine.update(|s| s.section = id.clone())
                                    >
                                        {*title}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </nav>
                    <p class="muted">
                        "You are looking at "
                        <strong>{move || section_title(&mine.with(|s| s.section.clone()))}</strong>
                        ". Others see it next to your name."
                    </p>
                    <label class="draft">
                        <span>"Shared notes (others see when you type)"</span>
                        <textarea
                            id="draft"
                            rows="4"
                            placeholder="Start typing…"
                            on:input=on_input
                        ></textarea>
                    </label>
                    <div class="actions">
                        <button type="button" class="secondary" on:click=leave>"Leave room"</button>
                        <button
                            type="button"
                            class="secondary"
                            id="invite-agent"
                            on:click=move |_| {
                                invite.dispatch(room.get_untracked());
                            }
                        >
                            "Invite an agent (1 min)"
                        </button>
                    </div>
                </section>

                <section class="card">
                    <h2>"Everyone else here"</h2>
                    <ul class="sessions" aria-label="Sessions">
                        <For
                            each=move || others.get()
                            key=|s: &SessionEntry| s.session_id.clone()
                            let:other
                        >
                            <SessionRow other=other my_user=my_user/>
                        </For>
                    </ul>
                    <Show when=move || others.with(Vec::is_empty)>
                        <p class="muted empty">"Nobody else yet. Open this room in another window."</p>
                    </Show>
                </section>
            </div>
        </main>
    }
}

/// One row per session: the row stays while its session changes, and updates in place.
#[component]
fn SessionRow(other: SessionEntry, my_user: Signal<Option<String>>) -> impl IntoView {
    let state = {
        let other = other.clone();
        Memo::new(move |_| other.state_as::<DemoState>().unwrap_or_default())
    };
    let away = {
        let other = other.clone();
        move || other.is_away()
    };
    let away2 = away.clone();
    let same_user = my_user.get_untracked().as_deref() == Some(&*other.user_id);
    let name = {
        let other = other.clone();
        move || other.name()
    };
    view! {
        <li
            class="session"
            data-session=other.session_id.to_string()
            data-user=other.user_id.to_string()
            data-section=move || state.with(|s| s.section.clone())
            data-typing=move || state.with(|s| s.typing.to_string())
            data-away=move || away().to_string()
        >
            <span class="session-name">{name}</span>
            {same_user.then(|| view! { <span class="tag">"your other tab"</span> })}
            {other.is_agent().then(|| view! { <span class="tag agent">"agent"</span> })}
            <Show when=away2.clone()>
                <span class="tag away">"away"</span>
            </Show>
            <span class="session-where">
                "in " {move || state.with(|s| section_title(&s.section))}
            </span>
            <Show when=move || state.with(|s| s.typing)>
                <span class="typing">"typing…"</span>
            </Show>
        </li>
    }
}

fn section_title(id: &str) -> &'static str {
    SECTIONS
        .iter()
        .find(|(s, _)| *s == id)
        .map(|(_, t)| *t)
        .unwrap_or("somewhere")
}
