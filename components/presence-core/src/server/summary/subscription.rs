//! One summary subscriber: the room's counts and first `k` users, and its own user.

use super::summarizer::{Summarizer, SummaryState};
use crate::limits::{DEFAULT_SUMMARY_USERS, MAX_SUMMARY_USERS};
use crate::server::subscription::{Hold, SharedMessage};
use crate::wire::{RoomMessage, UserPresence};
use std::sync::Arc;
use tokio::sync::watch;

/// What a summary subscription shows: how many users it lists, and whose own entry it follows.
///
/// ```
/// use presence_core::server::SummaryOptions;
/// let options = SummaryOptions::default().k(8).me("ada");
/// assert_eq!(options.k, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SummaryOptions {
    /// How many of the room's first users to list (lowered to
    /// [`crate::limits::MAX_SUMMARY_USERS`], raised to 1). Default
    /// [`crate::limits::DEFAULT_SUMMARY_USERS`] (5, as `<FacePile/>` shows).
    pub k: usize,
    /// The user whose own entry the subscription follows (`me` messages): the subscriber's, so
    /// it can show itself even when it is not among the first `k`. Default none.
    pub me: Option<String>,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            k: DEFAULT_SUMMARY_USERS,
            me: None,
        }
    }
}

impl SummaryOptions {
    /// Sets [`SummaryOptions::k`].
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets [`SummaryOptions::me`].
    pub fn me(mut self, user: impl Into<String>) -> Self {
        self.me = Some(user.into());
        self
    }

    /// `k` within its bounds.
    pub(crate) fn clamped_k(&self) -> usize {
        self.k.clamp(1, MAX_SUMMARY_USERS)
    }
}

/// A summary subscription to one room, from [`crate::server::Presence::subscribe_summary`].
///
/// [`SummarySubscription::next`] yields a [`RoomMessage::Summary`] with the counts and first
/// users, then a [`RoomMessage::Me`] if it follows a user, then a summary whenever the counts or
/// the first users change (at most one per window; the first users only when they changed) and
/// a `me` whenever its user changes. A subscriber that is slow skips to the latest summary.
/// Dropping it closes it; if it held a session, that session gets the grace deadline.
#[derive(Debug)]
pub struct SummarySubscription {
    k: usize,
    state: watch::Receiver<Option<Arc<SummaryState>>>,
    /// What this subscriber was last sent.
    sent: Option<Arc<SummaryState>>,
    me: Option<(String, watch::Receiver<Option<UserPresence>>)>,
    // Dropped after `me` (see `Drop`): the summarizer forgets a user nobody follows.
    summarizer: Arc<Summarizer>,
    _hold: Hold,
}

impl SummarySubscription {
    pub(crate) fn new(summarizer: Arc<Summarizer>, hold: Hold, options: &SummaryOptions) -> Self {
        let me = options.me.as_ref().map(|user| {
            let mut rx = summarizer.me(user);
            rx.mark_changed(); // sent after the first summary
            (user.clone(), rx)
        });
        SummarySubscription {
            k: options.clamped_k(),
            state: summarizer.state(),
            sent: None,
            me,
            summarizer,
            _hold: hold,
        }
    }

    /// The room this subscription watches.
    pub fn room(&self) -> &str {
        self.summarizer.room()
    }

    /// How many first users it lists.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The next message: a summary, or the subscriber's own user.
    pub async fn next(&mut self) -> Arc<SharedMessage> {
        loop {
            let Some(sent) = self.sent.clone() else {
                let first = self
                    .state
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|state| state.clone());
                let Some(first) = first else {
                    return std::future::pending().await; // the summarizer outlives us
                };
                self.sent = Some(first.clone());
                return first.frame(self.k, true);
            };
            tokio::select! {
                changed = self.state.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                    match self.news(&sent) {
                        Some(message) => return message,
                        None => continue, // a change beyond what this subscriber shows
                    }
                }
                user = me_changed(&mut self.me) => return me_message(&sent, user),
            }
        }
    }

    /// The next message if it is already here, without waiting (see
    /// [`crate::server::Subscription::try_next`]): the `me` that follows the first summary, or
    /// a summary and a `me` published together, go in the same write.
    pub fn try_next(&mut self) -> Option<Arc<SharedMessage>> {
        let sent = self.sent.clone()?; // the first summary comes from `next`
        if self.state.has_changed().unwrap_or(false) {
            if let Some(message) = self.news(&sent) {
                return Some(message);
            }
        }
        let (_, rx) = self.me.as_mut()?;
        if !rx.has_changed().unwrap_or(false) {
            return None;
        }
        let user = rx.borrow_and_update().clone();
        let sent = self.sent.as_ref().unwrap_or(&sent);
        Some(me_message(sent, user))
    }

    /// The summary as it is now, marked seen; a message if it shows this subscriber something
    /// it was not sent (`sent`).
    fn news(&mut self, sent: &Arc<SummaryState>) -> Option<Arc<SharedMessage>> {
        let now = self.state.borrow_and_update().clone()?;
        let same_first =
            Arc::ptr_eq(&sent.first, &now.first) || sent.first_k(self.k) == now.first_k(self.k);
        self.sent = Some(now.clone());
        if same_first && sent.counts == now.counts {
            return None;
        }
        Some(now.frame(self.k, !same_first))
    }
}

/// The followed user's news, with the `seq` of the summary last sent.
fn me_message(sent: &SummaryState, user: Option<UserPresence>) -> Arc<SharedMessage> {
    Arc::new(SharedMessage::new(RoomMessage::Me {
        seq: sent.seq,
        user,
    }))
}

/// The followed user's next news (never, if none is followed).
async fn me_changed(
    me: &mut Option<(String, watch::Receiver<Option<UserPresence>>)>,
) -> Option<UserPresence> {
    let Some((_, rx)) = me else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        return std::future::pending().await;
    }
    rx.borrow_and_update().clone()
}

impl Drop for SummarySubscription {
    fn drop(&mut self) {
        if let Some((user, rx)) = self.me.take() {
            drop(rx);
            self.summarizer.forget_me(&user);
        }
    }
}
