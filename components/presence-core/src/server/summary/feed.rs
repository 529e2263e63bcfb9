//! A subscriber's feed in the view it asked for: the full list, a summary, or automatic (the
//! full list in small rooms, a summary in big ones).

use super::subscription::{SummaryOptions, SummarySubscription};
use super::summarizer::{Summaries, Summarizer, SummaryState};
use crate::error::PresenceError;
use crate::server::store::Store;
use crate::server::subscription::{SharedMessage, Subscription};
use crate::wire::RoomMessage;
use std::sync::Arc;
use tokio::sync::watch;

/// Which list a subscriber gets (see [`crate::server::Presence::feed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum View {
    /// Everyone: a snapshot, then every change.
    Full,
    /// A summary: counts, the first users and the subscriber's own (see [`SummarySubscription`]).
    Summary(SummaryOptions),
    /// The full list while the room lists at most
    /// [`crate::server::PresenceConfig::summary_above`] users, a summary (with these options)
    /// above it, and the full list again below half of it.
    Auto(SummaryOptions),
}

enum Current {
    Full(Subscription),
    Summary(SummarySubscription),
}

/// What the subscriber needs to be subscribed again (in the other view).
struct Ask {
    room_token: String,
    session_token: Option<String>,
    as_user: Option<String>,
    options: SummaryOptions,
}

/// Automatic mode: the room's counts, watched whatever the current view.
struct Auto {
    /// Held so the room stays summarized while the feed lives.
    _summarizer: Arc<Summarizer>,
    state: watch::Receiver<Option<Arc<SummaryState>>>,
    above: usize,
}

/// A subscriber's messages in the view it asked for, from [`crate::server::Presence::feed`]:
/// [`Subscription`]'s messages for the full list, [`SummarySubscription`]'s for a summary; in
/// automatic mode, a switch from one to the other starts with a `summary` or a `snapshot`.
/// Dropping it closes it (a held session gets the grace deadline).
pub struct Feed {
    store: Arc<dyn Store>,
    summaries: Arc<Summaries>,
    ask: Ask,
    auto: Option<Auto>,
    current: Current,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("summary", &self.is_summary())
            .field("auto", &self.auto.is_some())
            .finish()
    }
}

impl Feed {
    pub(crate) async fn open(
        store: Arc<dyn Store>,
        summaries: Arc<Summaries>,
        room_token: &str,
        session_token: Option<&str>,
        as_user: Option<&str>,
        view: View,
    ) -> Result<Feed, PresenceError> {
        let (options, mut summary, auto) = match view {
            View::Full => (SummaryOptions::default(), false, false),
            View::Summary(options) => (options, true, false),
            View::Auto(options) => (options, false, true),
        };
        let ask = Ask {
            room_token: room_token.to_string(),
            session_token: session_token.map(str::to_string),
            as_user: as_user.map(str::to_string),
            options,
        };
        let mut feed_auto = None;
        if auto {
            let room = store.verify_room_token(room_token)?;
            let summarizer = summaries.of(&store, &room);
            let mut state = summarizer.state();
            let above = store.config().summary_above;
            let users = state
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|now| now.as_ref().map(|s| s.counts.users as usize));
            summary = users.is_some_and(|users| users > above);
            feed_auto = Some(Auto {
                _summarizer: summarizer,
                state,
                above,
            });
        }
        let current = if summary {
            Current::Summary(open_summary(&store, &summaries, &ask).await?)
        } else {
            Current::Full(store.subscribe(room_token, session_token, as_user).await?)
        };
        Ok(Feed {
            store,
            summaries,
            ask,
            auto: feed_auto,
            current,
        })
    }

    /// The room it follows.
    pub fn room(&self) -> &str {
        match &self.current {
            Current::Full(s) => s.room(),
            Current::Summary(s) => s.room(),
        }
    }

    /// True while it sends a summary rather than the full list.
    pub fn is_summary(&self) -> bool {
        matches!(self.current, Current::Summary(_))
    }

    /// The next message if it is already here, without waiting (see
    /// [`Subscription::try_next`]): for a transport that sends what piled up in one write.
    /// Switches of view come only from [`Feed::next`].
    pub fn try_next(&mut self) -> Option<Arc<SharedMessage>> {
        match &mut self.current {
            Current::Full(subscription) => subscription.try_next(),
            Current::Summary(subscription) => subscription.try_next(),
        }
    }

    /// The next message.
    pub async fn next(&mut self) -> Arc<SharedMessage> {
        loop {
            let Some(auto) = &mut self.auto else {
                return match &mut self.current {
                    Current::Full(s) => s.next().await,
                    Current::Summary(s) => s.next().await,
                };
            };
            match &mut self.current {
                Current::Full(subscription) => {
                    tokio::select! {
                        message = subscription.next() => return message,
                        changed = auto.state.changed() => {
                            if changed.is_err() {
                                self.auto = None; // cannot happen while we hold the summarizer
                                continue;
                            }
                            let users = users_of(&auto.state);
                            if users > auto.above {
                                if let Ok(summary) =
                                    open_summary(&self.store, &self.summaries, &self.ask).await
                                {
                                    self.current = Current::Summary(summary);
                                }
                            }
                        }
                    }
                }
                Current::Summary(summary) => {
                    let message = summary.next().await;
                    if let RoomMessage::Summary(s) = message.message() {
                        if (s.counts.users as usize) <= auto.above / 2 {
                            let ask = &self.ask;
                            if let Ok(full) = self
                                .store
                                .subscribe(
                                    &ask.room_token,
                                    ask.session_token.as_deref(),
                                    ask.as_user.as_deref(),
                                )
                                .await
                            {
                                // The full list's snapshot comes next, in place of this.
                                self.current = Current::Full(full);
                                continue;
                            }
                        }
                    }
                    auto.state.mark_unchanged();
                    return message;
                }
            }
        }
    }
}

fn users_of(state: &watch::Receiver<Option<Arc<SummaryState>>>) -> usize {
    state
        .borrow()
        .as_ref()
        .map_or(0, |s| s.counts.users as usize)
}

async fn open_summary(
    store: &Arc<dyn Store>,
    summaries: &Summaries,
    ask: &Ask,
) -> Result<SummarySubscription, PresenceError> {
    subscribe_summary(
        store,
        summaries,
        &ask.room_token,
        ask.session_token.as_deref(),
        ask.as_user.as_deref(),
        &ask.options,
    )
    .await
}

/// A summary subscription: the room token checked, the session (if any) held, and the room's
/// summarizer (started if nobody holds it).
pub(crate) async fn subscribe_summary(
    store: &Arc<dyn Store>,
    summaries: &Summaries,
    room_token: &str,
    session_token: Option<&str>,
    as_user: Option<&str>,
    options: &SummaryOptions,
) -> Result<SummarySubscription, PresenceError> {
    let room = store.verify_room_token(room_token)?;
    let hold = store.hold(room_token, session_token, as_user).await?;
    Ok(SummarySubscription::new(
        summaries.of(store, &room),
        hold,
        options,
    ))
}
