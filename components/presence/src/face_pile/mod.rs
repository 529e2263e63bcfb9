//! `<FacePile/>`: overlapping faces of who is in the room, with a "+N" list of everyone.

pub mod avatar;
mod labels;
mod stylesheet;

pub use labels::{FacePileLabels, LabelFormat};

use crate::store::UserEntry;
use crate::use_presence::{use_presence, UsePresenceReturn};
use leptos::prelude::*;
use presence_core::wire::{PresenceKind, UserPresence};
use std::sync::Arc;

/// Faces of the people in a room: online first (in join order), then offline ones dimmed with
/// "last seen". Each face has a tooltip (hover and keyboard focus) with name and status; past
/// `max_visible` faces a "+N" button opens the full list.
///
/// Accessible as a labelled `role="list"` of `listitem`s whose names say who and in what state.
/// Every face carries `data-presence-user` (user id), `data-presence-status`
/// (`online` / `idle` / `away` / `offline`) and `data-presence-kind` (`person` / `agent`, and
/// class `lp-face--agent`: a rounded square) for styling and tests.
#[component]
pub fn FacePile(
    /// The room to show: what [`use_presence`] returned.
    presence: UsePresenceReturn,
    /// How many faces to show before the "+N" button (a number or a signal). Default 5.
    #[prop(into, default = Signal::stored(5))]
    max_visible: Signal<usize>,
    /// Face diameter in CSS pixels (a number or a signal). Default 32.
    #[prop(into, default = Signal::stored(32))]
    size: Signal<u32>,
    /// More classes for the pile's outer element (beside `lp-facepile`). Default none.
    #[prop(optional, into)]
    class: Option<String>,
    /// Whether offline users (with "last seen") are shown. Default true.
    #[prop(default = true)]
    show_offline: bool,
    /// Accessible name of the list. Default: `labels.list` ("People in this room").
    #[prop(optional, into)]
    label: Option<String>,
    /// Every word the pile shows or says (statuses, "last seen", "+N", the list's name), for
    /// apps in other languages. Default English: [`FacePileLabels::default`].
    #[prop(optional)]
    labels: Option<FacePileLabels>,
    /// An image URL for a user; initials on a colour are drawn when it gives `None`.
    /// Default: always initials.
    #[prop(optional, into)]
    avatar_url: Option<Callback<UserPresence, Option<String>>>,
) -> impl IntoView {
    let labels = Arc::new(labels.unwrap_or_default());
    let label = label.unwrap_or_else(|| labels.list.clone());
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
            .take(max_visible.get())
            .collect::<Vec<_>>()
    });
    // While the live list is a summary, the counts say how many there are in all.
    let (counts, summarized) = (presence.counts, presence.summarized);
    let total = Memo::new(move |_| {
        if summarized.get() {
            let counts = counts.get();
            (if show_offline {
                counts.users
            } else {
                counts.online
            }) as usize
        } else {
            shown.with(Vec::len)
        }
    });
    let hidden_count = Memo::new(move |_| total.get().saturating_sub(visible.with(Vec::len)));
    let open = RwSignal::new(false);
    // The full list of a summarized room, loaded a page at a time while open, let go when closed.
    let pages = Pages::new(presence.clone(), show_offline);
    Effect::new({
        let pages = pages.clone();
        move |_| match (open.get(), summarized.get()) {
            (true, true) => pages.load_first(),
            _ => pages.clear(),
        }
    });
    let rows = Memo::new({
        let pages = pages.clone();
        move |_| match summarized.get() {
            true => pages.rows.get(),
            false => shown.get(),
        }
    });
    let pile_id = unique_pile_id();
    let holds_css = stylesheet::claim();
    let popover_id = format!("{pile_id}-all");
    let self_id = presence.user_id;

    let face_for = {
        let (pile_id, labels) = (pile_id.clone(), labels.clone());
        move |entry: UserEntry| {
            view! {
                <Face
                    entry=entry
                    pile_id=pile_id.clone()
                    self_id=self_id
                    now=now
                    avatar_url=avatar_url
                    labels=labels.clone()
                />
            }
        }
    };
    let row_for = {
        let labels = labels.clone();
        move |entry: UserEntry| {
            view! {
                <Row
                    entry=entry
                    self_id=self_id
                    now=now
                    avatar_url=avatar_url
                    labels=labels.clone()
                />
            }
        }
    };
    let list_label = format!("{label}: {}", labels.everyone);
    let (more_labels, show_all_labels, page_labels) =
        (labels.clone(), labels.clone(), labels.clone());

    view! {
        <div
            class=match class {
                Some(more) => format!("lp-facepile {more}"),
                None => "lp-facepile".to_string(),
            }
            style=move || format!("--lp-face-size: {}px", size.get())
        >
            // The first pile on the page renders the stylesheet (no setup step).
            {stylesheet::style(holds_css)}
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
                    aria-label={
                        let labels = show_all_labels.clone();
                        move || (labels.show_all)(total.get() as u64)
                    }
                    on:click=move |_| open.update(|o| *o = !*o)
                    on:keydown=move |ev| {
                        if ev.key() == "Escape" {
                            open.set(false)
                        }
                    }
                >
                    {
                        let labels = more_labels.clone();
                        move || (labels.more)(hidden_count.get() as u64)
                    }
                </button>
            </Show>
            <div
                id=format!("{pile_id}-all")
                class="lp-facepile__popover"
                role="dialog"
                aria-label=list_label
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
                        <For
                            each=move || rows.get()
                            key=|e| e.user_id.clone()
                            children=row_for.clone()
                        />
                    </ul>
                    {
                        let (pages, labels) = (pages.clone(), page_labels.clone());
                        move || pages.footer(&labels)
                    }
                </Show>
            </div>
        </div>
    }
}

/// How many users a page of a big room's full list holds.
const PAGE_USERS: u64 = 100;

/// The full list of a summarized room, as loaded so far.
#[derive(Clone)]
struct Pages {
    presence: UsePresenceReturn,
    show_offline: bool,
    rows: RwSignal<Vec<UserEntry>>,
    /// How many the whole list has (`None` before the first page).
    total: RwSignal<Option<u64>>,
    /// Where the next page starts in the whole list.
    next: RwSignal<u64>,
    loading: RwSignal<bool>,
    /// Bumped by `clear`: a page that arrives after it is dropped.
    generation: RwSignal<u64>,
}

impl Pages {
    fn new(presence: UsePresenceReturn, show_offline: bool) -> Self {
        Pages {
            presence,
            show_offline,
            rows: RwSignal::new(Vec::new()),
            total: RwSignal::new(None),
            next: RwSignal::new(0),
            loading: RwSignal::new(false),
            generation: RwSignal::new(0),
        }
    }

    fn clear(&self) {
        self.generation.update(|g| *g += 1);
        self.rows.set(Vec::new());
        self.total.set(None);
        self.next.set(0);
        self.loading.set(false);
    }

    fn load_first(&self) {
        if self.total.get_untracked().is_none() && !self.loading.get_untracked() {
            self.load_next();
        }
    }

    fn load_next(&self) {
        self.loading.set(true);
        let (this, generation, offset) = (
            self.clone(),
            self.generation.get_untracked(),
            self.next.get_untracked(),
        );
        leptos::task::spawn_local(async move {
            let page = this.presence.list_page(offset, PAGE_USERS).await;
            if this.generation.get_untracked() != generation {
                return; // closed meanwhile
            }
            this.loading.set(false);
            let Ok(page) = page else { return };
            let more = page
                .users
                .into_iter()
                .filter(|u| this.show_offline || u.online);
            let more: Vec<UserEntry> = more.map(UserEntry::fixed).collect();
            this.rows.update(|rows| {
                for entry in more {
                    if !rows.iter().any(|r| r.user_id == entry.user_id) {
                        rows.push(entry);
                    }
                }
            });
            this.next.set(page.offset + PAGE_USERS);
            this.total.set(Some(page.total));
        });
    }

    /// Under the rows: "Loading…", or a button for the next page while there is one.
    fn footer(&self, labels: &FacePileLabels) -> impl IntoView {
        if self.loading.get() {
            return view! { <p class="lp-facepile__loading">{labels.loading.clone()}</p> }
                .into_any();
        }
        let left = self
            .total
            .get()
            .map_or(0, |total| total.saturating_sub(self.next.get()));
        if left == 0 {
            return ().into_any();
        }
        let this = self.clone();
        view! {
            <button type="button" class="lp-facepile__load-more" on:click=move |_| this.load_next()>
                {(labels.load_more)(left.min(PAGE_USERS))}
            </button>
        }
        .into_any()
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
    #[prop(into, default = Signal::stored(5))]
    max_visible: Signal<usize>,
    /// Face diameter in CSS pixels. Default 32.
    #[prop(into, default = Signal::stored(32))]
    size: Signal<u32>,
) -> impl IntoView {
    let presence = use_presence(room, name);
    view! { <FacePile presence=presence max_visible=max_visible size=size/> }
}

/// An id for one pile, unique in the document and the same in the server's HTML and when the
/// browser hydrates it: the render's own sequence (what resources use to find their data), plus,
/// for piles made in the browser after hydration (or in a client-side app, which has no such
/// sequence), a counter of this page's own.
fn unique_pile_id() -> String {
    let shared = Owner::current_shared_context();
    let sequence = shared
        .as_ref()
        .map_or(0, |context| context.next_id().into_inner());
    let hydrating = shared
        .as_ref()
        .is_some_and(|context| !context.is_browser() || context.during_hydration());
    if hydrating {
        return format!("lp-pile-{sequence}");
    }
    thread_local! {
        static MADE_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let local = MADE_HERE.with(|made| {
        made.set(made.get() + 1);
        made.get()
    });
    format!("lp-pile-{sequence}-{local}")
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
    labels: Arc<FacePileLabels>,
) -> impl IntoView {
    let user_id = entry.user_id.to_string();
    // The user id itself (as hex: ids may hold any character), so no two faces share one.
    let tip_id = format!(
        "{pile_id}-{}",
        user_id
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
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
    let (name_labels, tip_labels) = (labels.clone(), labels.clone());
    view! {
        <li
            class="lp-face"
            class:lp-face--self=is_self
            class:lp-face--agent=move || user.with(|u| u.kind == PresenceKind::Agent)
            role="listitem"
            tabindex="0"
            data-presence-user=user_id
            data-presence-status=move || user.with(|u| u.status_label())
            data-presence-kind=move || user.with(|u| u.kind.label())
            aria-label=move || {
                let is_self = is_self2();
                user.with(|u| {
                    let after = name_labels.after_name(u, is_self);
                    format!("{}{after}, {}", u.name, name_labels.status(u, now.get()))
                })
            }
            aria-describedby=described_by
        >
            <Avatar user=user avatar_url=avatar_url/>
            <span class="lp-face__tooltip" role="tooltip" id=tip_id>
                <span class="lp-face__tooltip-name">
                    {move || user.with(|u| u.name.clone())}
                    {move || {
                        let is_self = is_self3();
                        user.with(|u| tip_labels.after_name(u, is_self))
                    }}
                </span>
                <span class="lp-face__tooltip-status">
                    {move || user.with(|u| labels.tooltip(u, now.get()))}
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
    labels: Arc<FacePileLabels>,
) -> impl IntoView {
    let user_id = entry.user_id.to_string();
    let presence = entry.presence.clone();
    let user: Signal<UserPresence> = Signal::derive(move || presence.get());
    let is_self = {
        let user_id = user_id.clone();
        move || self_id.with(|me| me.as_deref() == Some(user_id.as_str()))
    };
    let name_labels = labels.clone();
    view! {
        <li
            class="lp-facepile__row"
            class:lp-face--agent=move || user.with(|u| u.kind == PresenceKind::Agent)
            role="listitem"
            data-presence-user=user_id
            data-presence-status=move || user.with(|u| u.status_label())
            data-presence-kind=move || user.with(|u| u.kind.label())
        >
            <Avatar user=user avatar_url=avatar_url/>
            <span class="lp-facepile__row-text">
                <span>
                    {move || user.with(|u| u.name.clone())}
                    {move || {
                        let is_self = is_self();
                        user.with(|u| name_labels.after_name(u, is_self))
                    }}
                </span>
                <span class="lp-facepile__row-status">
                    {move || user.with(|u| labels.tooltip(u, now.get()))}
                </span>
            </span>
        </li>
    }
}

/// "Now" on the server's clock, ticking every 15 s in the browser so "last seen" stays true.
/// It starts at the time the list was rendered, so SSR and hydration print the same words.
fn use_server_now(rendered_at_ms: u64) -> Signal<u64> {
    let now = RwSignal::new(rendered_at_ms);
    #[cfg(any(feature = "hydrate", feature = "csr"))]
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
        let mut user = UserPresence::new("u", "U", vec![]);
        (user.online, user.away, user.online_since, user.last_seen) = (online, away, 1, last_seen);
        user
    }

    #[test]
    fn status_words_match_the_status_attribute() {
        let t = 10_000_000;
        let en = FacePileLabels::default();
        assert_eq!(en.status(&user(true, false, None), t), "online");
        assert_eq!(en.status(&user(true, true, None), t), "away");
        assert_eq!(
            en.status(&user(false, false, Some(t - 180_000)), t),
            "offline, last seen 3 min ago"
        );
        assert_eq!(
            en.tooltip(&user(false, false, Some(t - 180_000)), t),
            "Last seen 3 min ago"
        );
        assert_eq!(user(true, true, None).status_label(), "away");
        // Idle: its own word, and for how long in the tooltip.
        let mut idle_session = presence_core::wire::SessionPresence::new("s", "U");
        idle_session.status = presence_core::wire::SessionStatus::Idle;
        idle_session.idle_since = Some(t - 6 * 60_000);
        let idle = UserPresence::new("u", "U", vec![idle_session]);
        assert_eq!(idle.status_label(), "idle");
        assert_eq!(en.status(&idle, t), "idle");
        assert_eq!(en.tooltip(&idle, t), "Idle for 6 min");
        let fr = FacePileLabels::default()
            .idle("inactif")
            .idle_tooltip(|ms| format!("Inactif depuis {} min", ms / 60_000));
        assert_eq!(fr.status(&idle, t), "inactif");
        assert_eq!(fr.tooltip(&idle, t), "Inactif depuis 6 min");
    }

    #[test]
    fn every_word_of_the_pile_can_be_replaced() {
        use crate::store::PresenceStore;
        use presence_core::wire::RoomSnapshot;
        let owner = Owner::new();
        owner.set();
        let mut online = user(true, false, None);
        online.user_id = "ada".into();
        online.name = "Ada".into();
        let mut gone = user(false, false, Some(1_000));
        gone.user_id = "bob".into();
        gone.name = "Bob".into();
        let store = PresenceStore::new(Some(RoomSnapshot::new("r", 2, vec![online, gone])));
        let presence = crate::use_presence::test_return(store, 181_000);
        let french = FacePileLabels::default()
            .list("Personnes ici")
            .statuses("en ligne", "absent", "hors ligne")
            .last_seen(|ms| format!("Vu il y a {} min", ms / 60_000))
            .more(|n| format!("et {n} autres"))
            .show_all(|n| format!("Voir les {n} personnes"));
        let html = view! { <FacePile presence=presence max_visible=1 labels=french/> }.to_html();
        assert!(html.contains(r#"aria-label="Personnes ici""#), "{html}");
        assert!(html.contains(r#"aria-label="Ada, en ligne""#), "{html}");
        assert!(
            html.contains(r#"aria-label="Voir les 2 personnes""#),
            "{html}"
        );
        assert!(html.contains("et 1 autres"), "{html}");
        assert!(
            html.contains(r#"aria-label="Personnes ici: everyone""#),
            "{html}"
        );
        for english in ["People in this room", ", online", "Show all", "Last seen"] {
            assert!(!html.contains(english), "{english} left in {html}");
        }
    }

    #[test]
    fn two_piles_on_a_page_carry_the_stylesheet_once() {
        use crate::store::PresenceStore;
        let owner = Owner::new();
        owner.set();
        let presence = || crate::use_presence::test_return(PresenceStore::new(None), 0);
        let (one, two) = (presence(), presence());
        let html = view! {
            <FacePile presence=one/>
            <FacePile presence=two/>
        }
        .to_html();
        assert_eq!(html.matches("<style").count(), 1, "{html}");
        assert_eq!(html.matches("class=\"lp-facepile\"").count(), 2, "{html}");
    }

    #[test]
    fn an_agent_is_marked_by_kind_class_and_name() {
        use crate::store::PresenceStore;
        use presence_core::wire::RoomSnapshot;
        let owner = Owner::new();
        owner.set();
        let mut bot = user(true, false, None);
        bot.user_id = "bot".into();
        bot.name = "Summarizer".into();
        bot.kind = PresenceKind::Agent;
        let mut ada = user(true, false, None);
        ada.user_id = "ada".into();
        ada.name = "Ada".into();
        let store = PresenceStore::new(Some(RoomSnapshot::new("r", 2, vec![bot, ada])));
        let presence = crate::use_presence::test_return(store, 0);
        let html = view! { <FacePile presence=presence/> }.to_html();
        assert!(html.contains(r#"data-presence-kind="agent""#), "{html}");
        assert!(html.contains(r#"data-presence-kind="person""#), "{html}");
        assert!(html.contains("lp-face--agent"), "{html}");
        assert!(
            html.contains(r#"aria-label="Summarizer (agent), online""#),
            "{html}"
        );
        assert!(html.contains(r#"aria-label="Ada, online""#), "{html}");
        // Each user is drawn as often (face, and row of the full list): the agent is marked in
        // each, the person in none.
        assert_eq!(
            html.matches(r#"data-presence-kind="agent""#).count(),
            html.matches(r#"data-presence-kind="person""#).count(),
            "{html}"
        );
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
            let store = PresenceStore::new(Some(RoomSnapshot::new(
                "r",
                2,
                vec![online.clone(), gone.clone()],
            )));
            let presence = crate::use_presence::test_return(store, 181_000);
            view! { <FacePile presence=presence max_visible=max_visible/> }.to_html()
        };

        let html = render(5);
        let ids_of = |html: &str| -> Vec<String> {
            html.match_indices("aria-controls=\"")
                .map(|(i, m)| html[i + m.len()..].split('"').next().unwrap().to_string())
                .collect()
        };
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
        assert!(ids_of(&html).len() == 1);

        // Two piles with the same label and size in one page: their ids differ, and each
        // button controls its own list.
        let two = {
            let store = || {
                PresenceStore::new(Some(RoomSnapshot::new(
                    "r",
                    2,
                    vec![online.clone(), gone.clone()],
                )))
            };
            let a = crate::use_presence::test_return(store(), 181_000);
            let b = crate::use_presence::test_return(store(), 181_000);
            view! {
                <div>
                    <FacePile presence=a max_visible=1 class="header-pile"/>
                    <FacePile presence=b max_visible=1/>
                </div>
            }
            .to_html()
        };
        let ids = ids_of(&two);
        assert_eq!(ids.len(), 2, "{two}");
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            assert_eq!(
                two.matches(&format!("id=\"{id}\"")).count(),
                1,
                "{id} in {two}"
            );
        }
        assert!(two.contains(r#"class="lp-facepile header-pile""#));
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
