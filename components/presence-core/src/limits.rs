//! Input limits shared by the engine and its clients.

/// Longest room, user or session id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest display name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 64;
/// Largest app-defined state of one session, as serialized JSON, in bytes.
pub const MAX_STATE_BYTES: usize = 4096;
/// Deepest nesting of app-defined state (`[[1]]` is 2). Every message carries the state a few
/// levels further down, and JSON decoders refuse documents deeper than about 128.
pub const MAX_STATE_DEPTH: usize = 32;
/// Most combining marks in a row in a display name (real scripts need up to four or five;
/// "Zalgo" text stacks dozens that spill over the names around it).
pub const MAX_COMBINING_MARKS: usize = 5;
/// Shortest heartbeat interval the engine accepts; shorter requests are raised to this.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// Longest heartbeat interval the engine accepts; longer requests are lowered to this.
pub const MAX_INTERVAL_MS: u64 = 300_000;
/// Interval assumed when a heartbeat names none.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;
/// A visible tab's session lives at most this long (ms) past its interval: time for a heartbeat
/// that failed (a network blip of a few seconds) to be retried, and short enough that a lost
/// network shows within 15 s at the default interval (10 s + 4.5 s, then one message).
pub const MAX_HEARTBEAT_SLACK_MS: u64 = 4_500;
/// From this interval on (hidden tabs, 60 s by default) the slack is 1.5 intervals again:
/// browsers delay a hidden tab's timers by up to a minute.
pub const HIDDEN_INTERVAL_FROM_MS: u64 = 30_000;

/// Most users a summary subscription lists (its `k` is lowered to this).
pub const MAX_SUMMARY_USERS: usize = 50;
/// Users a summary subscription lists when it names no `k` (what `<FacePile/>` shows).
pub const DEFAULT_SUMMARY_USERS: usize = 5;

/// Most users one page of a room's list holds (`list_page`'s `limit` is lowered to this).
pub const MAX_PAGE_USERS: usize = 200;

/// Longest time an agent's session lives after a heartbeat (see `HeartbeatRequest::ttl_ms`).
pub const MAX_AGENT_TTL_MS: u64 = 3_600_000;

/// How long after a heartbeat its session lives: an agent's `ttl_ms` (clamped to
/// [`MIN_INTERVAL_MS`] … [`MAX_AGENT_TTL_MS`]) if it set one, else [`expiry_after`] the (clamped)
/// interval.
pub fn lifetime_ms(interval_ms: u64, ttl_ms: Option<u64>) -> u64 {
    match ttl_ms {
        Some(ttl) => ttl.clamp(MIN_INTERVAL_MS, MAX_AGENT_TTL_MS),
        None => expiry_after(interval_ms),
    }
}

/// Clamps a requested heartbeat interval to `[MIN_INTERVAL_MS, MAX_INTERVAL_MS]`.
pub fn clamp_interval(requested_ms: Option<u64>) -> u64 {
    requested_ms
        .unwrap_or(DEFAULT_INTERVAL_MS)
        .clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
}

/// How long after a heartbeat a session with this (clamped) interval lives: the interval plus a
/// slack of 1.5 intervals, at most [`MAX_HEARTBEAT_SLACK_MS`] below [`HIDDEN_INTERVAL_FROM_MS`].
/// 1 s → 2.5 s, 3 s → 7.5 s, 10 s → 14.5 s, 60 s → 150 s.
pub fn expiry_after(interval_ms: u64) -> u64 {
    let slack = interval_ms * 3 / 2;
    if interval_ms >= HIDDEN_INTERVAL_FROM_MS {
        interval_ms + slack
    } else {
        interval_ms + slack.min(MAX_HEARTBEAT_SLACK_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_clamped_and_expiry_leaves_a_bounded_slack_for_visible_tabs() {
        assert_eq!(clamp_interval(None), 10_000);
        assert_eq!(clamp_interval(Some(1)), 1_000);
        assert_eq!(clamp_interval(Some(10_000_000)), 300_000);
        // A lost network shows within 15 s at the default interval; a 3 s blip does not.
        assert_eq!(expiry_after(10_000), 14_500);
        assert_eq!(expiry_after(1_000), 2_500);
        assert_eq!(expiry_after(3_000), 7_500);
        assert_eq!(expiry_after(29_000), 33_500);
        // Hidden tabs: 2.5 intervals, for throttled timers.
        assert_eq!(expiry_after(60_000), 150_000);
        // An agent's TTL replaces it, clamped.
        assert_eq!(lifetime_ms(10_000, None), 14_500);
        assert_eq!(lifetime_ms(10_000, Some(60_000)), 60_000);
        assert_eq!(lifetime_ms(10_000, Some(1)), 1_000);
        assert_eq!(lifetime_ms(10_000, Some(u64::MAX)), MAX_AGENT_TTL_MS);
        // Never shorter for a longer interval.
        let mut last = 0;
        for interval in (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).step_by(500) {
            assert!(expiry_after(interval) > last, "{interval}");
            last = expiry_after(interval);
        }
    }
}
