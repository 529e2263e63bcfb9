//! `<FacePile/>`: overlapping faces of who is in the room, with a "+N" list of everyone.

pub mod avatar;

use crate::store::UserEntry;
use crate::use_presence::{use_presence, UsePresenceReturn};
use leptos::prelude::*;
use presence_core::wire::UserPresence;

/// The component's stylesheet, rendered with it (no setup step). Theme it with the
/// `--lp-*` custom properties listed at its top.
pub const FACE_PILE_CSS: &str = include_str!("face_pile.css");

/// Faces of the people in a room: online first (in join order), then offline ones dimmed with
/// "last seen". Each face has a tooltip (hover and keyboard focus) with name and status; past
/// `max_visible` faces a "+N" button opens the full list.
///
/// Accessible as a labelled `role="list"` of `listitem`s whose names say who and in what state.
/// Every face carries `data-presence-user` (user id) and `data-presence-status`
/// (`online` / `away` / `offline`) for styling and tests.
#[component]
pub fn FacePile(
    /// The room to show: what [`use_presence`] returned.
    presence: UsePresenceReturn,
    /// How many faces to show before the "+N" button. Default 5.
    #[prop(default = 5)]
    max_visible: usize,
    /// Face diameter in CSS pixels. Default 32.
    #[prop(default = 32)]
    size: u32,
    /// Whether offline users (with "last seen") are shown. Default true.
    #[prop(default = true)]
    show_offline: bool,
    /// Accessible name of the list. Default "People in this room".
    #[prop(into, default = "People in this room".to_string())]
    label: String,
    /// An image URL for a user; initials on a colour are drawn when it gives `None`.
    /// Default: always initials.
    #[prop(optional, into)]
    avatar_url: Option<Callback<UserPresence, Option<String>>>,
) -> impl IntoView {
    let now = use_server_now(presence.rendered_at_ms);
    let users = presence.users;
    let shown = Memo::new(move |_| {
        users
            .get()
            .into_iter()
            .filter(|e| show_offline || e.presence.with(|p| p.online))
            .collect::<Vec<UserEntry>>()
    });
    let visible = Memo::new(move |_| {
        shown
            .get()
            .into_iter()
            .take(max_visible)
            .collect::<Vec<_>>()
    });
    let hidden_count = Memo::new(move |_| shown.with(|s| s.len().saturating_sub(max_visible)));
    let open = RwSignal::new(false);
    let pile_id = format!("lp-{}", avatar::hue(&label) * 1000 + size);
    let popover_id = format!("{pile_id}-all");
    let self_id = presence.user_id;

    let face_for = {
        let pile_id = pile_id.clone();
        move |entry: UserEntry| {
            view! {
                <Face
                    entry=entry
                    pile_id=pile_id.clone()
                    self_id=self_id
                    now=now
                    avatar_url=avatar_url
                />
            }
        }
    };
    let row_for = move |entry: UserEntry| {
        view! { <Row entry=entry self_id=self_id now=now avatar_url=avatar_url/> }
    };
    let list_label = label.clone();

    view! {
        <div class="lp-facepile" style=format!("--lp-face-size: {size}px")>
            <style>{FACE_PILE_CSS}</style>
            <ul class="lp-facepile__list" role="list" aria-label=label>
                <For each=move || visible.get() key=|e| e.user_id.clone() children=face_for/>
            </ul>
            // Outside the list, so the list holds faces only.
            <Show when=move || { hidden_count.get() > 0 }>
                <button
                    type="button"
                    class="lp-facepile__more"
                    aria-haspopup="true"
                    aria-expanded=move || open.get().to_string()
                    aria-controls=popover_id.clone()
                    aria-label=move || format!("Show all {} people", shown.with(Vec::len))
                    on:click=move |_| open.update(|o| *o = !*o)
                    on:keydown=move |ev| {
                        if ev.key() == "Escape" {
                            open.set(false)
                        }
                    }
                >
                    {move || format!("+{}", hidden_count.get())}
                </button>
            </Show>
            <div
                id=format!("{pile_id}-all")
                class="lp-facepile__popover"
                role="dialog"
                aria-label=format!("{list_label}: everyone")
                hidden=move || !open.get()
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        open.set(false)
                    }
                }
            >
                // Rendered only while open: when closed, each user is in the DOM once.
                <Show when=move || open.get()>
                    <ul class="lp-facepile__rows" role="list">
                        <For each=move || shown.get() key=|e| e.user_id.clone() children=row_for/>
                    </ul>
                </Show>
            </div>
        </div>
    }
}

/// [`FacePile`] for a room, joining it as `name`: `use_presence` and the pile in one tag.
#[component]
pub fn RoomFacePile(
    /// The room id.
    #[prop(into)]
    room: Signal<String>,
    /// This user's display name.
    #[prop(into)]
    name: Signal<String>,
    /// How many faces to show before the "+N" button. Default 5.
    #[prop(default = 5)]
    max_visible: usize,
    /// Face diameter in CSS pixels. Default 32.
    #[prop(default = 32)]
    size: u32,
) -> impl IntoView {
    let presence = use_presence(room, name);
    view! { <FacePile presence=presence max_visible=max_visible size=size/> }
}

/// Status words for a user: "online", "away", "offline, last seen 3 min ago".
fn status_text(user: &UserPresence, now_ms: u64) -> String {
    match (user.online, user.away, user.last_seen) {
        (true, false, _) => "online".into(),
        (true, true, _) => "away".into(),
        (false, _, Some(seen)) => format!("offline, last seen {}", avatar::ago(now_ms, seen)),
        (false, _, None) => "offline".into(),
    }
}

fn tooltip_status(user: &UserPresence, now_ms: u64) -> String {
    match (user.online, user.away, user.last_seen) {
        (true, false, _) => "Online now".into(),
        (true, true, _) => "Away (tab in background)".into(),
        (false, _, Some(seen)) => format!("Last seen {}", avatar::ago(now_ms, seen)),
        (false, _, None) => "Offline".into(),
    }
}

#[component]
fn Avatar(
    user: Signal<UserPresence>,
    avatar_url: Option<Callback<UserPresence, Option<String>>>,
) -> impl IntoView {
    let image = move || avatar_url.and_then(|f| f.run(user.get()));
    view! {
        <span
            class="lp-face__avatar"
            aria-hidden="true"
            style=move || format!("--lp-face-color: {}", user.with(|u| avatar::color(&u.user_id)))
        >
            {move || match image() {
                Some(src) => view! { <img src=src alt=""/> }.into_any(),
                None => user.with(|u| avatar::initials(&u.name)).into_any(),
            }}
        </span>
    }
}

#[component]
fn Face(
    entry: UserEntry,
    pile_id: String,
    self_id: Signal<Option<String>>,
    now: Signal<u64>,
    avatar_url: Option<Callback<UserPresence, Option<String>>>,
) -> impl IntoView {
    let user_id = entry.user_id.to_string();
    let tip_id = format!(
        "{pile_id}-{}",
        avatar::hue(&user_id) * 10_000 + user_id.len() as u32
    );
    let presence = entry.presence.clone();
    let user: Signal<UserPresence> = Signal::derive(move || presence.get());
    let is_self = {
        let user_id = user_id.clone();
        move || self_id.with(|me| me.as_deref() == Some(user_id.as_str()))
    };
    let is_self2 = is_self.clone();
    let is_self3 = is_self.clone();
    let described_by = tip_id.clone();
    view! {
        <li
            class="lp-face"
            class:lp-face--self=is_self
            role="listitem"
            tabindex="0"
            data-presence-user=user_id
            data-presence-status=move || user.with(|u| u.status_label())
            aria-label=move || {
                let you = if is_self2() { " (you)" } else { "" };
                user.with(|u| format!("{}{you}, {}", u.name, status_text(u, now.get())))
            }
            aria-describedby=described_by
        >
            <Avatar user=user avatar_url=avatar_url/>
            <span class="lp-face__tooltip" role="tooltip" id=tip_id>
                <span class="lp-face__tooltip-name">
                    {move || user.with(|u| u.name.clone())}
                    {move || if is_self3() { " (you)" } else { "" }}
                </span>
                <span class="lp-face__tooltip-status">
                    {move || user.with(|u| tooltip_status(u, now.get()))}
                </span>
            </span>
        </li>
    }
}

#[component]
fn Row(
    entry: UserEntry,
    self_id: Signal<Option<String>>,
    now: Signal<u64>,
    avatar_url: Option<Callback<UserPresence, Option<String>>>,
) -> impl IntoView {
    let user_id = entry.user_id.to_string();
    let presence = entry.presence.clone();
    let user: Signal<UserPresence> = Signal::derive(move || presence.get());
    let is_self = {
        let user_id = user_id.clone();
        move || self_id.with(|me| me.as_deref() == Some(user_id.as_str()))
    };
    view! {
        <li
            class="lp-facepile__row"
            role="listitem"
            data-presence-user=user_id
            data-presence-status=move || user.with(|u| u.status_label())
        >
            <Avatar user=user avatar_url=avatar_url/>
            <span class="lp-facepile__row-text">
                <span>
                    {move || user.with(|u| u.name.clone())}
                    {move || if is_self() { " (you)" } else { "" }}
                </span>
                <span class="lp-facepile__row-status">
                    {move || user.with(|u| tooltip_status(u, now.get()))}
                </span>
            </span>
        </li>
    }
}

/// "Now" on the server's clock, ticking every 15 s in the browser so "last seen" stays true.
/// It starts at the time the list was rendered, so SSR and hydration print the same words.
fn use_server_now(rendered_at_ms: u64) -> Signal<u64> {
    let now = RwSignal::new(rendered_at_ms);
    #[cfg(feature = "hydrate")]
    {
        use send_wrapper::SendWrapper;
        let offset = if rendered_at_ms == 0 {
            0.0
        } else {
            js_sys::Date::now() - rendered_at_ms as f64
        };
        let tick = move || now.set((js_sys::Date::now() - offset).max(0.0) as u64);
        let handle: std::rc::Rc<std::cell::RefCell<Option<gloo_timers::callback::Interval>>> =
            Default::default();
        let started = handle.clone();
        Effect::new(move |_| {
            tick();
            if started.borrow().is_none() {
                *started.borrow_mut() = Some(gloo_timers::callback::Interval::new(15_000, tick));
            }
        });
        let handle = SendWrapper::new(handle);
        on_cleanup(move || {
            handle.borrow_mut().take();
        });
    }
    now.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(online: bool, away: bool, last_seen: Option<u64>) -> UserPresence {
        UserPresence {
            user_id: "u".into(),
            name: "U".into(),
            online,
            away,
            online_since: 1,
            last_seen,
            sessions: vec![],
        }
    }

    #[test]
    fn status_words_match_the_status_attribute() {
        let t = 10_000_000;
        assert_eq!(status_text(&user(true, false, None), t), "online");
        assert_eq!(status_text(&user(true, true, None), t), "away");
        assert_eq!(
            status_text(&user(false, false, Some(t - 180_000)), t),
            "offline, last seen 3 min ago"
        );
        assert_eq!(
            tooltip_status(&user(false, false, Some(t - 180_000)), t),
            "Last seen 3 min ago"
        );
        assert_eq!(user(true, true, None).status_label(), "away");
    }

    #[test]
    fn the_pile_renders_on_the_server_with_the_room_list() {
        use crate::store::PresenceStore;
        use presence_core::wire::RoomSnapshot;
        let owner = Owner::new();
        owner.set();
        let mut online = user(true, false, None);
        online.user_id = "ada".into();
        online.name = "Ada Lovelace".into();
        let mut gone = user(false, false, Some(1_000));
        gone.user_id = "bob".into();
        gone.name = "<img src=x onerror=alert(1)>".into();
        let render = |max_visible: usize| {
            let store = PresenceStore::new(Some(RoomSnapshot {
                room: "r".into(),
                seq: 2,
                users: vec![online.clone(), gone.clone()],
            }));
            let presence = crate::use_presence::test_return(store, 181_000);
            view! { <FacePile presence=presence max_visible=max_visible/> }.to_html()
        };

        let html = render(5);
        assert!(html.contains(r#"role="list""#), "{html}");
        assert!(html.contains(r#"aria-label="People in this room""#));
        assert!(html.contains(r#"data-presence-user="ada""#));
        assert!(html.contains(r#"data-presence-status="online""#));
        assert!(html.contains(r#"aria-label="Ada Lovelace, online""#));
        assert!(html.contains(">AL<"), "initials");
        assert!(html.contains(r#"data-presence-status="offline""#));
        assert!(html.contains("Last seen 3 min ago"));
        // The hostile name is text, escaped, never markup.
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("Show all"), "nobody hidden, no button");

        let html = render(1);
        assert!(
            html.contains(r#"aria-label="Show all 2 people""#),
            "one more behind the button"
        );
        let list_end = html.find("</ul>").unwrap();
        assert!(
            html.find("+1").unwrap() > list_end,
            "the list holds faces only"
        );
        assert_eq!(html.matches(r#"role="listitem""#).count(), 1, "{html}");
        assert!(
            !html.contains(r#"data-presence-user="bob""#),
            "a closed popover renders no rows"
        );
    }
}
