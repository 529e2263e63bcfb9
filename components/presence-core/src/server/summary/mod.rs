//! Summary subscriptions: a room's counts, its first `k` users and the subscriber itself,
//! instead of everyone, coalesced over a short window.
//!
//! A room is summarized once per server, whatever the number of its summary subscribers: one
//! [`summarizer::Summarizer`] holds one ordinary subscription to the room (so it works the same
//! over every store), keeps the room's list from it, and publishes what a summary shows at most
//! once per [`crate::server::PresenceConfig::summary_window_ms`]. Subscribers of the same `k`
//! share each message, serialized once. A full list in a room of N costs each of its N
//! subscribers every change (N² over a room filling up); a summary costs each one message per
//! window, whatever the churn.

mod feed;
mod subscription;
pub(crate) mod summarizer;

pub(crate) use feed::subscribe_summary;
pub use feed::{Feed, View};
pub use subscription::{SummaryOptions, SummarySubscription};
pub(crate) use summarizer::Summaries;
