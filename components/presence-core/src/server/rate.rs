//! Token buckets: per session (inside the registry) and per client address (a bounded map).

use super::Map;
use crate::error::PresenceError;
use std::hash::Hash;

/// A rate: `per_second` on average, up to `burst` at once ([`RateLimit::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` on average, up to `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimit { per_second, burst }
    }

    /// No limit.
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: f64::INFINITY,
        burst: u32::MAX,
    };
}

/// One bucket. 16 bytes: cheap enough to live in every session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// True if the bucket holds its whole burst at `now`.
    fn is_full(&self, limit: RateLimit, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens + elapsed * limit.per_second >= f64::from(limit.burst)
    }

    pub fn full(limit: RateLimit, now: u64) -> Self {
        Bucket {
            tokens: f64::from(limit.burst),
            at_ms: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, limit: RateLimit, now: u64) -> Result<(), PresenceError> {
        if limit.per_second.is_infinite() {
            return Ok(());
        }
        let elapsed = now.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst));
        self.at_ms = now.max(self.at_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / limit.per_second * 1000.0;
            Err(PresenceError::TooManyRequests {
                retry_after_ms: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

/// Buckets by key (a client address), at most `capacity` of them: when full, buckets that have
/// refilled completely are dropped first (they hold no information), then the stalest.
///
/// Several servers can share one limit: each reports what it admitted per key since its last
/// report ([`KeyedLimiter::report`]), a shared store adds that up, and each server then starts
/// its bucket again from the total ([`KeyedLimiter::share`]).
#[derive(Debug)]
pub(crate) struct KeyedLimiter<K> {
    limit: RateLimit,
    capacity: usize,
    buckets: Map<K, Bucket>,
    /// Admitted per key since the last report (only when shared).
    admitted: Map<K, u32>,
    shared: bool,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        KeyedLimiter {
            limit,
            capacity: capacity.max(1),
            buckets: Map::default(),
            admitted: Map::default(),
            shared: false,
        }
    }

    // Only the Redis store shares its limits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// A limiter whose admissions are reported to a store other servers share.
    pub fn shared(limit: RateLimit, capacity: usize) -> Self {
        KeyedLimiter {
            shared: true,
            ..Self::new(limit, capacity)
        }
    }

    pub fn check(&mut self, key: &K, now: u64) -> Result<(), PresenceError> {
        if self.limit.per_second.is_infinite() {
            return Ok(());
        }
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.capacity {
            self.evict(now);
        }
        let limit = self.limit;
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(limit, now))
            .take(limit, now)?;
        if self.shared {
            *self.admitted.entry(key.clone()).or_default() += 1;
        }
        Ok(())
    }

    // Only the Redis store shares its limits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The limit these buckets keep.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    // Only the Redis store shares its limits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// What was admitted per key since the last report (none when unlimited), and, with a count
    /// of 0, every other key whose bucket is not full at `now`: another server may have taken
    /// from its shared total meanwhile, and this server should know before it admits more.
    pub fn report(&mut self, now: u64) -> Vec<(K, u32)> {
        let limit = self.limit;
        let mut report: Vec<(K, u32)> = self.admitted.drain().collect();
        for (key, bucket) in &self.buckets {
            if !bucket.is_full(limit, now) && !report.iter().any(|(k, _)| k == key) {
                report.push((key.clone(), 0));
            }
        }
        report
    }

    // Only the Redis store shares its limits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Puts back a report the shared store did not take (it did not answer).
    pub fn unreport(&mut self, report: &[(K, u32)]) {
        for (key, count) in report {
            if *count > 0 {
                *self.admitted.entry(key.clone()).or_default() += count;
            }
        }
    }

    // Only the Redis store shares its limits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Starts `key`'s bucket again from what every server admitted, as the shared store adds it
    /// up: `tat` is its theoretical arrival time (each admission pushes it one emission interval
    /// past `max(tat, now)`), less what this server admitted since its report.
    pub fn share(&mut self, key: &K, tat: u64, now: u64) {
        if self.limit.per_second.is_infinite() {
            return;
        }
        let step_ms = 1000.0 / self.limit.per_second;
        let owed = tat.saturating_sub(now) as f64 / step_ms;
        let since = self.admitted.get(key).copied().unwrap_or(0);
        let tokens = f64::from(self.limit.burst) - owed - f64::from(since);
        self.buckets.insert(
            key.clone(),
            Bucket {
                tokens: tokens.min(f64::from(self.limit.burst)),
                at_ms: now,
            },
        );
    }

    /// Runs only when the map is full (so at most once per `capacity / 2` new keys).
    fn evict(&mut self, now: u64) {
        let refill_ms = (f64::from(self.limit.burst) / self.limit.per_second * 1000.0) as u64;
        self.buckets
            .retain(|_, b| now.saturating_sub(b.at_ms) < refill_ms);
        if self.buckets.len() >= self.capacity {
            let mut ages: Vec<u64> = self.buckets.values().map(|b| b.at_ms).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.buckets.retain(|_, b| b.at_ms > cutoff);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = Bucket::full(LIMIT, 0);
        for _ in 0..3 {
            b.take(LIMIT, 0).unwrap();
        }
        assert_eq!(
            b.take(LIMIT, 0),
            Err(PresenceError::TooManyRequests {
                retry_after_ms: 500
            })
        );
        assert_eq!(
            b.take(LIMIT, 250),
            Err(PresenceError::TooManyRequests {
                retry_after_ms: 250
            })
        );
        b.take(LIMIT, 500).unwrap();
        // A long quiet spell refills to the burst, no further.
        for _ in 0..3 {
            b.take(LIMIT, 60_000).unwrap();
        }
        assert!(b.take(LIMIT, 60_000).is_err());
        // A clock that goes back does not mint tokens.
        assert!(b.take(LIMIT, 1_000).is_err());
    }

    #[test]
    fn a_shared_total_takes_what_other_servers_admitted() {
        let mut here = KeyedLimiter::shared(LIMIT, 8);
        here.check(&"a", 0).unwrap();
        assert_eq!(here.report(0), vec![("a", 1)]);
        // Drained; the bucket is not full yet, so it is asked about with nothing admitted.
        assert_eq!(here.report(0), vec![("a", 0)]);
        // Refilled: nothing to ask.
        assert!(here.report(10_000).is_empty());
        here.unreport(&[("a", 2), ("b", 0)]);
        assert_eq!(here.report(10_000), vec![("a", 2)]);
        // The store added ours (1) to another server's (2): three requests at 500 ms each.
        here.check(&"a", 0).unwrap(); // admitted after the report was sent
        here.share(&"a", 1_500, 0);
        // Burst 3, owed 3, one more since: nothing left until a token refills.
        assert_eq!(
            here.check(&"a", 0),
            Err(PresenceError::TooManyRequests {
                retry_after_ms: 1_000
            })
        );
        here.check(&"a", 1_000).unwrap();
    }

    #[test]
    fn keyed_limits_are_separate_and_bounded() {
        let mut l = KeyedLimiter::new(LIMIT, 4);
        for _ in 0..3 {
            l.check(&"a", 0).unwrap();
        }
        assert!(l.check(&"a", 0).is_err());
        l.check(&"b", 0).unwrap();
        for (i, k) in ["c", "d", "e", "f", "g"].iter().enumerate() {
            l.check(k, i as u64).unwrap();
        }
        assert!(l.len() <= 4, "{}", l.len());
        assert!(KeyedLimiter::new(RateLimit::UNLIMITED, 1)
            .check(&"x", 0)
            .is_ok());
    }
}
