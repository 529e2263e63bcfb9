//! Every word `<FacePile/>` shows or says, replaceable for apps in other languages.

use presence_core::wire::{PresenceKind, UserPresence};
use std::sync::Arc;

/// A text made from a number (a count, or milliseconds since a user was last seen).
pub type LabelFormat = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// The words of a [`super::FacePile`]. [`FacePileLabels::default`] is English; change any of them
/// with the setters:
///
/// ```
/// use leptos_presence::FacePileLabels;
/// let french = FacePileLabels::default()
///     .list("Personnes dans ce salon")
///     .you(" (vous)")
///     .statuses("en ligne", "absent", "hors ligne")
///     .tooltips("En ligne", "Absent (onglet en arrière-plan)", "Hors ligne")
///     .last_seen(|ms| format!("Vu il y a {} min", ms / 60_000))
///     .idle("inactif")
///     .idle_tooltip(|ms| format!("Inactif depuis {} min", ms / 60_000))
///     .more(|n| format!("+{n}"))
///     .show_all(|n| format!("Voir les {n} personnes"))
///     .everyone("tout le monde");
/// assert_eq!((french.last_seen)(180_000), "Vu il y a 3 min");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct FacePileLabels {
    /// Accessible name of the list of faces. Default "People in this room".
    pub list: String,
    /// Put after this browser's own user's name. Default " (you)".
    pub you: String,
    /// Put after an agent's name (server-side code: a bot, an AI agent, a job). Default
    /// " (agent)".
    pub agent: String,
    /// Status words in a face's accessible name. Default "online", "away", "offline" (and
    /// [`FacePileLabels::idle`]).
    pub online: String,
    /// See [`FacePileLabels::online`].
    pub away: String,
    /// See [`FacePileLabels::online`].
    pub offline: String,
    /// Status word of a user whose tabs have had no input for a while. Default "idle".
    pub idle: String,
    /// An idle user's tooltip line, from the milliseconds it has been idle. Default
    /// "Idle for 6 min".
    pub idle_tooltip: LabelFormat,
    /// A tooltip's status line for online, away and offline (without a last-seen time) users.
    /// Default "Online now", "Away (tab in background)", "Offline".
    pub online_tooltip: String,
    /// See [`FacePileLabels::online_tooltip`].
    pub away_tooltip: String,
    /// See [`FacePileLabels::online_tooltip`].
    pub offline_tooltip: String,
    /// An offline user's tooltip line, from the milliseconds since they were last seen.
    /// Default "Last seen 3 min ago" ("just now", "5 min ago", "3 h ago", "2 days ago").
    pub last_seen: LabelFormat,
    /// An offline user's status in a face's accessible name, from the same milliseconds.
    /// Default "offline, last seen 3 min ago".
    pub offline_last_seen: LabelFormat,
    /// The button that opens the full list, from the number of hidden people. Default "+3".
    pub more: LabelFormat,
    /// That button's accessible name, from the number of people in all. Default
    /// "Show all 7 people".
    pub show_all: LabelFormat,
    /// Put after the list's name to name the full list. Default "everyone" (as in
    /// "People in this room: everyone").
    pub everyone: String,
    /// In a big room's full list (loaded a page at a time): the button that loads the next
    /// page, from how many are not shown yet. Default "Show 100 more".
    pub load_more: LabelFormat,
    /// Shown while a page of the full list loads. Default "Loading…".
    pub loading: String,
}

impl Default for FacePileLabels {
    fn default() -> Self {
        FacePileLabels {
            list: "People in this room".into(),
            you: " (you)".into(),
            agent: " (agent)".into(),
            online: "online".into(),
            away: "away".into(),
            offline: "offline".into(),
            idle: "idle".into(),
            idle_tooltip: Arc::new(|ms| format!("Idle for {}", super::avatar::for_how_long(ms))),
            online_tooltip: "Online now".into(),
            away_tooltip: "Away (tab in background)".into(),
            offline_tooltip: "Offline".into(),
            last_seen: Arc::new(|ms| format!("Last seen {}", super::avatar::ago(ms, 0))),
            offline_last_seen: Arc::new(|ms| {
                format!("offline, last seen {}", super::avatar::ago(ms, 0))
            }),
            more: Arc::new(|n| format!("+{n}")),
            show_all: Arc::new(|n| format!("Show all {n} people")),
            everyone: "everyone".into(),
            load_more: Arc::new(|n| format!("Show {n} more")),
            loading: "Loading…".into(),
        }
    }
}

impl std::fmt::Debug for FacePileLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacePileLabels")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

impl FacePileLabels {
    /// Sets [`FacePileLabels::list`].
    pub fn list(mut self, text: impl Into<String>) -> Self {
        self.list = text.into();
        self
    }
    /// Sets [`FacePileLabels::you`].
    pub fn you(mut self, text: impl Into<String>) -> Self {
        self.you = text.into();
        self
    }
    /// Sets [`FacePileLabels::agent`].
    pub fn agent(mut self, text: impl Into<String>) -> Self {
        self.agent = text.into();
        self
    }
    /// What follows a user's name: [`FacePileLabels::agent`] for an agent, then
    /// [`FacePileLabels::you`] for this browser's own user.
    pub(crate) fn after_name(&self, user: &UserPresence, is_self: bool) -> String {
        let agent = if user.kind == PresenceKind::Agent {
            self.agent.as_str()
        } else {
            ""
        };
        let you = if is_self { self.you.as_str() } else { "" };
        format!("{agent}{you}")
    }
    /// Sets the status words [`FacePileLabels::online`], `away` and `offline`.
    pub fn statuses(
        mut self,
        online: impl Into<String>,
        away: impl Into<String>,
        offline: impl Into<String>,
    ) -> Self {
        (self.online, self.away, self.offline) = (online.into(), away.into(), offline.into());
        self
    }
    /// Sets the tooltip lines [`FacePileLabels::online_tooltip`], `away_tooltip` and
    /// `offline_tooltip`.
    pub fn tooltips(
        mut self,
        online: impl Into<String>,
        away: impl Into<String>,
        offline: impl Into<String>,
    ) -> Self {
        (self.online_tooltip, self.away_tooltip, self.offline_tooltip) =
            (online.into(), away.into(), offline.into());
        self
    }
    /// Sets [`FacePileLabels::idle`].
    pub fn idle(mut self, text: impl Into<String>) -> Self {
        self.idle = text.into();
        self
    }
    /// Sets [`FacePileLabels::idle_tooltip`].
    pub fn idle_tooltip(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.idle_tooltip = Arc::new(f);
        self
    }
    /// Sets [`FacePileLabels::last_seen`].
    pub fn last_seen(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.last_seen = Arc::new(f);
        self
    }
    /// Sets [`FacePileLabels::offline_last_seen`].
    pub fn offline_last_seen(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.offline_last_seen = Arc::new(f);
        self
    }
    /// Sets [`FacePileLabels::more`].
    pub fn more(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.more = Arc::new(f);
        self
    }
    /// Sets [`FacePileLabels::show_all`].
    pub fn show_all(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.show_all = Arc::new(f);
        self
    }
    /// Sets [`FacePileLabels::load_more`].
    pub fn load_more(mut self, f: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.load_more = Arc::new(f);
        self
    }

    /// Sets [`FacePileLabels::loading`].
    pub fn loading(mut self, text: impl Into<String>) -> Self {
        self.loading = text.into();
        self
    }

    /// Sets [`FacePileLabels::everyone`].
    pub fn everyone(mut self, text: impl Into<String>) -> Self {
        self.everyone = text.into();
        self
    }

    /// A face's status in its accessible name: "online", "idle", "away", "offline, last seen 3
    /// min ago".
    pub(crate) fn status(&self, user: &UserPresence, now_ms: u64) -> String {
        match (user.online, user.away, user.last_seen) {
            (true, false, _) if user.idle => self.idle.clone(),
            (true, false, _) => self.online.clone(),
            (true, true, _) => self.away.clone(),
            (false, _, Some(seen)) => (self.offline_last_seen)(now_ms.saturating_sub(seen)),
            (false, _, None) => self.offline.clone(),
        }
    }

    /// A face's tooltip line: "Online now", "Idle for 6 min", "Away (tab in background)",
    /// "Last seen 3 min ago".
    pub(crate) fn tooltip(&self, user: &UserPresence, now_ms: u64) -> String {
        match (user.online, user.away, user.last_seen) {
            (true, false, _) if user.idle => {
                (self.idle_tooltip)(now_ms.saturating_sub(user.idle_since().unwrap_or(now_ms)))
            }
            (true, false, _) => self.online_tooltip.clone(),
            (true, true, _) => self.away_tooltip.clone(),
            (false, _, Some(seen)) => (self.last_seen)(now_ms.saturating_sub(seen)),
            (false, _, None) => self.offline_tooltip.clone(),
        }
    }
}
