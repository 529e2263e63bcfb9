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
/// A session expires this many intervals after its last heartbeat (as a fraction: 5/2 = 2.5).
pub const EXPIRY_INTERVALS_NUM: u64 = 5;
/// Denominator of [`EXPIRY_INTERVALS_NUM`].
pub const EXPIRY_INTERVALS_DEN: u64 = 2;

/// Clamps a requested heartbeat interval to `[MIN_INTERVAL_MS, MAX_INTERVAL_MS]`.
pub fn clamp_interval(requested_ms: Option<u64>) -> u64 {
    requested_ms
        .unwrap_or(DEFAULT_INTERVAL_MS)
        .clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
}

/// How long after a heartbeat a session with this (clamped) interval lives: 2.5 × interval.
pub fn expiry_after(interval_ms: u64) -> u64 {
    interval_ms * EXPIRY_INTERVALS_NUM / EXPIRY_INTERVALS_DEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_clamped_and_expiry_is_two_and_a_half_intervals() {
        assert_eq!(clamp_interval(None), 10_000);
        assert_eq!(clamp_interval(Some(1)), 1_000);
        assert_eq!(clamp_interval(Some(10_000_000)), 300_000);
        assert_eq!(expiry_after(10_000), 25_000);
        assert_eq!(expiry_after(1_000), 2_500);
    }
}
