//! Engine settings.

pub use super::rate::RateLimit;

/// Settings of a [`Presence`](super::Presence) engine. Every field has a default
/// (see [`PresenceConfig::default`]); change them with the setters:
///
/// ```
/// use presence_core::server::PresenceConfig;
/// let config = PresenceConfig::default()
///     .max_sessions_per_room(500)
///     .allowed_origins(["https://app.example.com".to_string()]);
/// assert_eq!(config.max_sessions_per_room, 500);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// When a page says it is going (it unloads, or its `use_presence` unmounts), its session
    /// ends this much later (in ms) unless it heartbeats again first: a reload, an in-app
    /// navigation or a back/forward-cache restore is not a leave, while a closed tab is shown
    /// offline this long after it closed (`PRESENCE_LEAVE_GRACE_MS`). 0 ends it at once, as a
    /// disconnect does. Default 1,500.
    pub leave_grace_ms: u64,
    /// Without an auth hook (open mode), whether any client may be invisible ("appear
    /// offline": present, watching, listed to nobody; `PRESENCE_ALLOW_INVISIBLE=1`). With a hook,
    /// its `invisible` rule decides instead. Server code calling [`crate::server::Presence`]
    /// directly is not held to it. Default false.
    pub allow_invisible: bool,
    /// After a pause (the process or machine stopped, or the store unreachable, for more than
    /// 2 s past a deadline), no session expires for this long (ms), so the heartbeats sent
    /// meanwhile are served before anyone is judged gone. 0 turns this off. Default 5,000.
    pub stall_grace_ms: u64,
    /// Messages buffered per subscriber; one that falls further behind is resynced from a
    /// snapshot instead of slowing the others. Default 256.
    pub subscriber_buffer: usize,
    /// A summary subscription's window (`PRESENCE_SUMMARY_WINDOW_MS`): changes within it are
    /// sent as one summary, at most one per window per subscriber (the first change after a
    /// quiet window goes out at once). Through a burst it doubles, up to 2 ms per subscriber
    /// and 1 s at most. Default 100.
    pub summary_window_ms: u64,
    /// The automatic limit (`PRESENCE_SUMMARY_ABOVE`): a subscriber that asked for `auto` gets
    /// the full list while the room lists at most this many users, and a summary above it (back
    /// to the full list below half of it), so an app written for small rooms survives a big
    /// one. Default 200.
    pub summary_above: usize,
    /// Most live sessions (tabs) one user may hold across all rooms; one more join gets
    /// `TooManySessions`. Default 50.
    pub max_sessions_per_user: usize,
    /// Most rooms one user may be present in at once; one more gets `TooManyRooms`. Default 50.
    pub max_rooms_per_user: usize,
    /// Heartbeats and state updates per session. Default 5/s, bursts of 20 (a client heartbeats
    /// every 10 s and sends state at most every 100 ms).
    pub session_rate: RateLimit,
    /// Heartbeats and updates per client address (checked by the HTTP layer, which knows the
    /// address). Default 50/s, bursts of 200: an office behind one NAT opens many tabs.
    pub address_rate: RateLimit,
    /// Most live subscriptions (WebSockets) one client address may hold on one server
    /// (`PRESENCE_MAX_SOCKETS_PER_ADDRESS`); one more is refused with `429
    /// too_many_connections`. Default 200 (an office behind one NAT opens many tabs).
    pub max_sockets_per_address: usize,
    /// Most client addresses tracked at once for `address_rate`. Default 100,000.
    pub max_tracked_addresses: usize,
    /// Key that signs room tokens. Servers sharing rooms must share it. Default: random per
    /// process (room tokens then do not survive a restart; clients get new ones on heartbeat).
    pub room_token_secret: Option<Vec<u8>>,
    /// Other origins whose pages may call presence (`PRESENCE_ALLOWED_ORIGINS`, comma separated,
    /// e.g. `https://app.example.com`): their requests get CORS headers, preflights are
    /// answered, and their WebSockets are accepted. Default: none, so a request whose `Origin`
    /// is not the server's own (its `Host`) is refused with `403 forbidden`, WebSocket upgrades
    /// included (no cross-site WebSocket hijacking). Requests without `Origin` (curl, servers,
    /// same-origin navigations) are unaffected.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`PRESENCE_TRUSTED_PROXIES`, a comma
    /// separated list of IP addresses). Default: none, so the per-address rate limit counts the
    /// connection's own address and ignores the header (a client could forge it).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Where the shared store lives (`PRESENCE_REDIS_URL`, e.g. `redis://127.0.0.1:6379/`).
    /// Default: none, the in-memory store. With Redis, `room_token_secret` is required.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key and channel this store uses (`PRESENCE_REDIS_PREFIX`).
    /// Default: `presence`. Apps sharing one Redis for separate presence worlds use different ones.
    pub redis_prefix: String,
    /// `redis_url` names a Redis Cluster (`PRESENCE_REDIS_CLUSTER=1`): one or more of its nodes,
    /// separated by commas. With one slot group every key then hashes to one slot (the prefix
    /// becomes a hash tag, `{presence}`); see [`PresenceConfig::redis_slot_groups`] to spread a
    /// deployment over the shards, and the README's "Redis Cluster". Default false.
    pub redis_cluster: bool,
    /// How many slot groups a deployment's Redis keys are spread over
    /// (`PRESENCE_REDIS_SLOT_GROUPS`, 1–16384). With 1 (the default) every key shares the
    /// prefix (on a Cluster, one slot: one shard holds the whole deployment). With more, each
    /// room and each user hashes to one group with its own hash tag (`{presence:7}`), so a
    /// Cluster spreads the rooms over its shards; every change in a room is still atomic in its
    /// slot. Every server of a deployment must use the same value, and changing it orphans what
    /// Redis holds (start it empty). Each server's scheduler claims from every group when it
    /// wakes: keep it to tens. See the README's "Redis Cluster".
    pub redis_slot_groups: u32,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            max_sessions_per_room: 10_000,
            offline_retention_ms: 24 * 60 * 60 * 1000,
            max_offline_users_per_room: 100,
            subscription_grace_ms: 5_000,
            leave_grace_ms: 1_500,
            allow_invisible: false,
            stall_grace_ms: 5_000,
            subscriber_buffer: 256,
            summary_window_ms: 100,
            summary_above: 200,
            max_sessions_per_user: 50,
            max_rooms_per_user: 50,
            session_rate: RateLimit {
                per_second: 5.0,
                burst: 20,
            },
            address_rate: RateLimit {
                per_second: 50.0,
                burst: 200,
            },
            max_sockets_per_address: 200,
            max_tracked_addresses: 100_000,
            room_token_secret: None,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            redis_url: None,
            redis_prefix: "presence".into(),
            redis_cluster: false,
            redis_slot_groups: 1,
        }
    }
}

impl PresenceConfig {
    /// Sets [`PresenceConfig::max_sessions_per_room`].
    pub fn max_sessions_per_room(mut self, value: usize) -> Self {
        self.max_sessions_per_room = value;
        self
    }

    /// Sets [`PresenceConfig::offline_retention_ms`].
    pub fn offline_retention_ms(mut self, value: u64) -> Self {
        self.offline_retention_ms = value;
        self
    }

    /// Sets [`PresenceConfig::max_offline_users_per_room`].
    pub fn max_offline_users_per_room(mut self, value: usize) -> Self {
        self.max_offline_users_per_room = value;
        self
    }

    /// Sets [`PresenceConfig::allow_invisible`].
    pub fn allow_invisible(mut self, value: bool) -> Self {
        self.allow_invisible = value;
        self
    }

    /// Sets [`PresenceConfig::leave_grace_ms`].
    pub fn leave_grace_ms(mut self, value: u64) -> Self {
        self.leave_grace_ms = value;
        self
    }

    /// Sets [`PresenceConfig::subscription_grace_ms`].
    pub fn subscription_grace_ms(mut self, value: u64) -> Self {
        self.subscription_grace_ms = value;
        self
    }

    /// Sets [`PresenceConfig::stall_grace_ms`].
    pub fn stall_grace_ms(mut self, value: u64) -> Self {
        self.stall_grace_ms = value;
        self
    }

    /// Sets [`PresenceConfig::subscriber_buffer`].
    pub fn subscriber_buffer(mut self, value: usize) -> Self {
        self.subscriber_buffer = value;
        self
    }

    /// Sets [`PresenceConfig::summary_window_ms`].
    pub fn summary_window_ms(mut self, value: u64) -> Self {
        self.summary_window_ms = value;
        self
    }

    /// Sets [`PresenceConfig::summary_above`].
    pub fn summary_above(mut self, value: usize) -> Self {
        self.summary_above = value;
        self
    }

    /// Sets [`PresenceConfig::max_sessions_per_user`].
    pub fn max_sessions_per_user(mut self, value: usize) -> Self {
        self.max_sessions_per_user = value;
        self
    }

    /// Sets [`PresenceConfig::max_rooms_per_user`].
    pub fn max_rooms_per_user(mut self, value: usize) -> Self {
        self.max_rooms_per_user = value;
        self
    }

    /// Sets [`PresenceConfig::session_rate`].
    pub fn session_rate(mut self, value: RateLimit) -> Self {
        self.session_rate = value;
        self
    }

    /// Sets [`PresenceConfig::address_rate`].
    pub fn address_rate(mut self, value: RateLimit) -> Self {
        self.address_rate = value;
        self
    }

    /// Sets [`PresenceConfig::max_sockets_per_address`].
    pub fn max_sockets_per_address(mut self, value: usize) -> Self {
        self.max_sockets_per_address = value;
        self
    }

    /// Sets [`PresenceConfig::max_tracked_addresses`].
    pub fn max_tracked_addresses(mut self, value: usize) -> Self {
        self.max_tracked_addresses = value;
        self
    }

    /// Sets [`PresenceConfig::room_token_secret`].
    pub fn room_token_secret(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.room_token_secret = Some(value.into());
        self
    }

    /// Sets [`PresenceConfig::allowed_origins`] (each as `PRESENCE_ALLOWED_ORIGINS` reads it:
    /// trimmed, without a trailing `/`, in lower case).
    pub fn allowed_origins(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.allowed_origins = values.into_iter().map(|o| normalise_origin(&o)).collect();
        self
    }

    /// Sets [`PresenceConfig::trusted_proxies`].
    pub fn trusted_proxies(mut self, values: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.trusted_proxies = values.into_iter().collect();
        self
    }

    /// Sets [`PresenceConfig::redis_url`].
    pub fn redis_url(mut self, value: impl Into<String>) -> Self {
        self.redis_url = Some(value.into());
        self
    }

    /// Sets [`PresenceConfig::redis_cluster`].
    pub fn redis_cluster(mut self, value: bool) -> Self {
        self.redis_cluster = value;
        self
    }

    /// Sets [`PresenceConfig::redis_slot_groups`] (0 counts as 1).
    pub fn redis_slot_groups(mut self, value: u32) -> Self {
        self.redis_slot_groups = value.max(1);
        self
    }

    /// Sets [`PresenceConfig::redis_prefix`].
    pub fn redis_prefix(mut self, value: impl Into<String>) -> Self {
        self.redis_prefix = value.into();
        self
    }
}

/// A `PRESENCE_*` environment variable that is set but not a valid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// `PRESENCE_STALL_GRACE_MS`,
    /// `PRESENCE_SUBSCRIBER_BUFFER`, `PRESENCE_MAX_SESSIONS_PER_USER`,
    /// `PRESENCE_MAX_ROOMS_PER_USER`, `PRESENCE_MAX_SOCKETS_PER_ADDRESS`, `PRESENCE_SESSION_RATE` and `PRESENCE_SESSION_BURST`,
    /// `PRESENCE_ADDRESS_RATE` and `PRESENCE_ADDRESS_BURST` (a rate of 0 turns that limit off),
    /// `PRESENCE_SECRET` (the room token key), `PRESENCE_TRUSTED_PROXIES`,
    /// `PRESENCE_ALLOWED_ORIGINS`, `PRESENCE_ALLOW_INVISIBLE`, and for Redis
    /// `PRESENCE_REDIS_URL`, `PRESENCE_REDIS_PREFIX`, `PRESENCE_REDIS_CLUSTER` and
    /// `PRESENCE_REDIS_SLOT_GROUPS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`PresenceConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = PresenceConfig::default();
        let number = |name, into: &mut u64| read(&lookup, name, into);
        for (name, into) in [
            (
                "PRESENCE_MAX_SESSIONS_PER_ROOM",
                &mut config.max_sessions_per_room,
            ),
            (
                "PRESENCE_MAX_OFFLINE_USERS_PER_ROOM",
                &mut config.max_offline_users_per_room,
            ),
            ("PRESENCE_SUBSCRIBER_BUFFER", &mut config.subscriber_buffer),
            ("PRESENCE_SUMMARY_ABOVE", &mut config.summary_above),
            (
                "PRESENCE_MAX_SOCKETS_PER_ADDRESS",
                &mut config.max_sockets_per_address,
            ),
            (
                "PRESENCE_MAX_SESSIONS_PER_USER",
                &mut config.max_sessions_per_user,
            ),
            (
                "PRESENCE_MAX_ROOMS_PER_USER",
                &mut config.max_rooms_per_user,
            ),
        ] {
            read(&lookup, name, into)?;
        }
        for (name, into) in [
            (
                "PRESENCE_OFFLINE_RETENTION_MS",
                &mut config.offline_retention_ms,
            ),
            (
                "PRESENCE_SUBSCRIPTION_GRACE_MS",
                &mut config.subscription_grace_ms,
            ),
            ("PRESENCE_LEAVE_GRACE_MS", &mut config.leave_grace_ms),
            ("PRESENCE_STALL_GRACE_MS", &mut config.stall_grace_ms),
            ("PRESENCE_SUMMARY_WINDOW_MS", &mut config.summary_window_ms),
        ] {
            read(&lookup, name, into)?;
        }
        for (rate_var, burst_var, limit) in [
            (
                "PRESENCE_SESSION_RATE",
                "PRESENCE_SESSION_BURST",
                &mut config.session_rate,
            ),
            (
                "PRESENCE_ADDRESS_RATE",
                "PRESENCE_ADDRESS_BURST",
                &mut config.address_rate,
            ),
        ] {
            let mut rate = limit.per_second as u64;
            let mut burst = u64::from(limit.burst);
            number(rate_var, &mut rate)?;
            number(burst_var, &mut burst)?;
            *limit = if rate == 0 {
                RateLimit::UNLIMITED
            } else {
                RateLimit {
                    per_second: rate as f64,
                    burst: burst.clamp(1, u64::from(u32::MAX)) as u32,
                }
            };
        }
        for (name, into) in [
            ("PRESENCE_ALLOW_INVISIBLE", &mut config.allow_invisible),
            ("PRESENCE_REDIS_CLUSTER", &mut config.redis_cluster),
        ] {
            if let Some(value) = lookup(name) {
                *into = match value.trim() {
                    "1" | "true" => true,
                    "0" | "false" | "" => false,
                    _ => {
                        return Err(ConfigError {
                            name,
                            value,
                            expected: "1, true, 0 or false",
                        })
                    }
                };
            }
        }
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
        if let Some(list) = lookup("PRESENCE_TRUSTED_PROXIES") {
            config.trusted_proxies = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| ConfigError {
                    name: "PRESENCE_TRUSTED_PROXIES",
                    value: list.clone(),
                    expected: "IP addresses separated by commas",
                })?;
        }
        if let Some(list) = lookup("PRESENCE_ALLOWED_ORIGINS") {
            config.allowed_origins = list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| {
                    let origin = normalise_origin(o);
                    let well_formed = origin == "null"
                        || origin.split_once("://").is_some_and(|(scheme, host)| {
                            matches!(scheme, "http" | "https")
                                && !host.is_empty()
                                && !host.contains('/')
                        });
                    well_formed.then_some(origin).ok_or(ConfigError {
                        name: "PRESENCE_ALLOWED_ORIGINS",
                        value: list.clone(),
                        expected: "origins like https://app.example.com, separated by commas",
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        config.redis_url = lookup("PRESENCE_REDIS_URL").filter(|url| !url.trim().is_empty());
        if let Some(prefix) = lookup("PRESENCE_REDIS_PREFIX") {
            if prefix.is_empty() || prefix.chars().any(|c| c.is_control() || c == ' ') {
                return Err(ConfigError {
                    name: "PRESENCE_REDIS_PREFIX",
                    value: prefix,
                    expected: "a non-empty key prefix without spaces",
                });
            }
            config.redis_prefix = prefix;
        }
        if let Some(value) = lookup("PRESENCE_REDIS_SLOT_GROUPS") {
            let groups = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|g| (1..=16384).contains(g));
            config.redis_slot_groups = groups.ok_or(ConfigError {
                name: "PRESENCE_REDIS_SLOT_GROUPS",
                value: value.clone(),
                expected: "a whole number from 1 to 16384",
            })?;
            if config.redis_slot_groups > 1 && config.redis_prefix.contains(['{', '}']) {
                return Err(ConfigError {
                    name: "PRESENCE_REDIS_SLOT_GROUPS",
                    value,
                    expected:
                        "1 while PRESENCE_REDIS_PREFIX has braces (groups make their own hash tags)",
                });
            }
        }
        Ok(config)
    }
}

/// Overwrites `into` with the variable `name`, if set; a value that does not parse is an error.
fn read<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    into: &mut T,
) -> Result<(), ConfigError> {
    if let Some(value) = lookup(name) {
        *into = value.trim().parse().map_err(|_| ConfigError {
            name,
            value,
            expected: "a whole number",
        })?;
    }
    Ok(())
}

/// An origin as requests' `Origin` headers are compared with it: trimmed, no trailing `/`, lower
/// case.
fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_setter_normalises_as_the_environment_does() {
        let config =
            PresenceConfig::default().allowed_origins([" https://App.Example.com/ ".to_string()]);
        assert_eq!(config.allowed_origins, ["https://app.example.com"]);
    }

    #[test]
    fn env_overrides_defaults_and_rejects_nonsense() {
        let config = PresenceConfig::from_lookup(|name| match name {
            "PRESENCE_SUBSCRIPTION_GRACE_MS" => Some("750".into()),
            "PRESENCE_MAX_SESSIONS_PER_ROOM" => Some(" 12 ".into()),
            "PRESENCE_SECRET" => Some("0123456789abcdef".into()),
            "PRESENCE_SESSION_RATE" => Some("0".into()),
            "PRESENCE_ADDRESS_RATE" => Some("7".into()),
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
        assert_eq!(config.session_rate, RateLimit::UNLIMITED);
        assert_eq!(config.address_rate.per_second, 7.0);
        assert_eq!(config.address_rate.burst, 200);

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

        let config = PresenceConfig::from_lookup(|name| {
            (name == "PRESENCE_TRUSTED_PROXIES").then(|| " 10.0.0.1, ::1 ".to_string())
        })
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        let err = PresenceConfig::from_lookup(|name| {
            (name == "PRESENCE_TRUSTED_PROXIES").then(|| "10.0.0.1, proxy.local".to_string())
        })
        .unwrap_err();
        assert_eq!(err.name, "PRESENCE_TRUSTED_PROXIES");

        let config = PresenceConfig::from_lookup(|name| {
            (name == "PRESENCE_ALLOWED_ORIGINS")
                .then(|| "https://App.Example.com/, http://127.0.0.1:8080".to_string())
        })
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            ["https://app.example.com", "http://127.0.0.1:8080"]
        );
        for bad in ["app.example.com", "https://app.example.com/path", "ftp://x"] {
            let err = PresenceConfig::from_lookup(|name| {
                (name == "PRESENCE_ALLOWED_ORIGINS").then(|| bad.to_string())
            })
            .unwrap_err();
            assert_eq!(err.name, "PRESENCE_ALLOWED_ORIGINS", "{bad}");
        }

        assert!(!PresenceConfig::default().allow_invisible);
        let invisible = |value: &str| {
            PresenceConfig::from_lookup(|name| {
                (name == "PRESENCE_ALLOW_INVISIBLE").then(|| value.to_string())
            })
        };
        assert!(invisible("1").unwrap().allow_invisible);
        assert!(!invisible("false").unwrap().allow_invisible);
        assert_eq!(
            invisible("yes").unwrap_err().name,
            "PRESENCE_ALLOW_INVISIBLE"
        );
    }

    #[test]
    fn slot_groups_are_a_whole_number_in_range_and_need_a_prefix_without_braces() {
        let with = |vars: &[(&str, &str)]| {
            PresenceConfig::from_lookup(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(PresenceConfig::default().redis_slot_groups, 1);
        assert_eq!(
            with(&[("PRESENCE_REDIS_SLOT_GROUPS", " 16 ")])
                .unwrap()
                .redis_slot_groups,
            16
        );
        for bad in ["0", "16385", "-1", "many"] {
            let err = with(&[("PRESENCE_REDIS_SLOT_GROUPS", bad)]).unwrap_err();
            assert_eq!(err.name, "PRESENCE_REDIS_SLOT_GROUPS", "{bad}");
            assert!(err.to_string().contains("1 to 16384"), "{err}");
        }
        let err = with(&[
            ("PRESENCE_REDIS_PREFIX", "{app}"),
            ("PRESENCE_REDIS_SLOT_GROUPS", "4"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("braces"), "{err}");
        // One group keeps a braced prefix working as before.
        let config = with(&[
            ("PRESENCE_REDIS_PREFIX", "{app}"),
            ("PRESENCE_REDIS_SLOT_GROUPS", "1"),
        ])
        .unwrap();
        assert_eq!(config.redis_prefix, "{app}");
    }
}
