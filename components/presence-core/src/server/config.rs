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

/// A `PRESENCE_*` environment variable that is set but not a valid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it holds.
    pub value: String,
    /// What it should hold.
    pub expected: &'static str,
}

impl PresenceConfig {
    /// The defaults, overridden by whichever of these are set:
    /// `PRESENCE_MAX_SESSIONS_PER_ROOM`, `PRESENCE_OFFLINE_RETENTION_MS`,
    /// `PRESENCE_MAX_OFFLINE_USERS_PER_ROOM`, `PRESENCE_SUBSCRIPTION_GRACE_MS`,
    /// `PRESENCE_SUBSCRIBER_BUFFER`, `PRESENCE_SECRET` (the room token key).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`PresenceConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = PresenceConfig::default();
        let number = |name: &'static str, into: &mut u64| -> Result<(), ConfigError> {
            if let Some(value) = lookup(name) {
                *into = value.trim().parse().map_err(|_| ConfigError {
                    name,
                    value,
                    expected: "a whole number",
                })?;
            }
            Ok(())
        };
        let mut n = config.max_sessions_per_room as u64;
        number("PRESENCE_MAX_SESSIONS_PER_ROOM", &mut n)?;
        config.max_sessions_per_room = n as usize;
        number(
            "PRESENCE_OFFLINE_RETENTION_MS",
            &mut config.offline_retention_ms,
        )?;
        let mut n = config.max_offline_users_per_room as u64;
        number("PRESENCE_MAX_OFFLINE_USERS_PER_ROOM", &mut n)?;
        config.max_offline_users_per_room = n as usize;
        number(
            "PRESENCE_SUBSCRIPTION_GRACE_MS",
            &mut config.subscription_grace_ms,
        )?;
        let mut n = config.subscriber_buffer as u64;
        number("PRESENCE_SUBSCRIBER_BUFFER", &mut n)?;
        config.subscriber_buffer = n as usize;
        if let Some(secret) = lookup("PRESENCE_SECRET") {
            if secret.len() < 16 {
                return Err(ConfigError {
                    name: "PRESENCE_SECRET",
                    value: "(hidden)".into(),
                    expected: "at least 16 bytes",
                });
            }
            config.room_token_secret = Some(secret.into_bytes());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_rejects_nonsense() {
        let config = PresenceConfig::from_lookup(|name| match name {
            "PRESENCE_SUBSCRIPTION_GRACE_MS" => Some("750".into()),
            "PRESENCE_MAX_SESSIONS_PER_ROOM" => Some(" 12 ".into()),
            "PRESENCE_SECRET" => Some("0123456789abcdef".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.subscription_grace_ms, 750);
        assert_eq!(config.max_sessions_per_room, 12);
        assert_eq!(
            config.offline_retention_ms,
            PresenceConfig::default().offline_retention_ms
        );
        assert!(config.room_token_secret.is_some());

        let err = PresenceConfig::from_lookup(|name| {
            (name == "PRESENCE_SUBSCRIBER_BUFFER").then(|| "lots".to_string())
        })
        .unwrap_err();
        assert_eq!(err.name, "PRESENCE_SUBSCRIBER_BUFFER");
        assert!(err.to_string().contains("whole number"));
        let err = PresenceConfig::from_lookup(|name| {
            (name == "PRESENCE_SECRET").then(|| "short".to_string())
        })
        .unwrap_err();
        assert!(!err.to_string().contains("short"), "secrets are not echoed");
    }
}
