//! Engine settings.

/// Settings of a [`Presence`](super::Presence) engine. Every field has a default
/// (see [`PresenceConfig::default`]).
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// Most live sessions one room may hold; one more heartbeat gets `RoomFull`. Default 10,000.
    pub max_sessions_per_room: usize,
    /// How long an offline user stays listed after its last session ended, in ms. Default 24 h.
    pub offline_retention_ms: u64,
    /// Most offline users listed per room; beyond it the longest-gone is dropped. Default 100.
    pub max_offline_users_per_room: usize,
    /// When the last subscription tied to a session closes, the session lives at most this much
    /// longer (in ms) unless it heartbeats or resubscribes. A closed connection is a strong hint
    /// that the tab is gone. Default 5,000.
    pub subscription_grace_ms: u64,
    /// Messages buffered per subscriber; one that falls further behind is resynced from a
    /// snapshot instead of slowing the others. Default 256.
    pub subscriber_buffer: usize,
    /// Key that signs room tokens. Servers sharing rooms must share it. Default: random per
    /// process (room tokens then do not survive a restart; clients get new ones on heartbeat).
    pub room_token_secret: Option<Vec<u8>>,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            max_sessions_per_room: 10_000,
            offline_retention_ms: 24 * 60 * 60 * 1000,
            max_offline_users_per_room: 100,
            subscription_grace_ms: 5_000,
            subscriber_buffer: 256,
            room_token_secret: None,
        }
    }
}
