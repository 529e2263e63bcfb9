//! Request rates that hold across servers, with no round trip on any request.
//!
//! Each server admits heartbeats and updates with its own buckets (per session, per client
//! address) as before. Every flush it reports what it admitted per key since the last report
//! ([`rates.lua`](rates.lua) adds it to the key's shared total) and starts each reported bucket
//! again from the total, less what it admitted meanwhile. Keys whose bucket is not full are
//! reported too (with nothing admitted), so a server that admitted nothing for a key still
//! learns what the others took. So a client that spreads its requests over N servers gets the
//! configured rate in the long run, not N times it: what it takes from one server is owed on
//! all of them from the next flush on. Between two flushes each server can still admit up to
//! its bucket, so a burst through N servers may reach N bursts once, after which the debt is
//! paid back at the configured rate.

use super::RedisPresence;
use crate::error::PresenceError;
use crate::server::rate::{KeyedLimiter, RateLimit};
use std::hash::Hash;
use std::net::IpAddr;

/// Most keys in one script call.
const MAX_KEYS: usize = 256;

impl RedisPresence {
    /// Reports this server's admissions since the last flush and takes up the shared totals.
    pub(super) async fn share_rates(&self) -> Result<(), PresenceError> {
        let prefix = self.inner.layout.shared();
        self.share(&self.inner.sessions, |token: &String| {
            format!("{prefix}:rate:s:{token}")
        })
        .await?;
        self.share(&self.inner.addresses, |address: &IpAddr| {
            format!("{prefix}:rate:a:{address}")
        })
        .await
    }

    async fn share<K: Hash + Eq + Clone>(
        &self,
        limiter: &std::sync::Mutex<KeyedLimiter<K>>,
        key_of: impl Fn(&K) -> String,
    ) -> Result<(), PresenceError> {
        let now = self.now_ms();
        let (report, limit) = {
            let mut limiter = super::lock(limiter);
            (limiter.report(now), limiter.limit())
        };
        if report.is_empty() || limit.per_second.is_infinite() {
            return Ok(());
        }
        let mut chunks = report.chunks(MAX_KEYS);
        while let Some(chunk) = chunks.next() {
            let now = self.now_ms();
            let totals = match self.add_up(chunk, limit, now, &key_of).await {
                Ok(totals) => totals,
                Err(e) => {
                    // Not counted yet: the next flush reports them again.
                    let mut limiter = super::lock(limiter);
                    limiter.unreport(chunk);
                    chunks.for_each(|rest| limiter.unreport(rest));
                    return Err(e);
                }
            };
            let mut limiter = super::lock(limiter);
            for ((key, _), tat) in chunk.iter().zip(totals) {
                limiter.share(key, tat, now);
            }
        }
        Ok(())
    }

    /// One call of `rates.lua`: the keys' shared totals after adding `chunk`.
    async fn add_up<K>(
        &self,
        chunk: &[(K, u32)],
        limit: RateLimit,
        now: u64,
        key_of: &impl Fn(&K) -> String,
    ) -> Result<Vec<u64>, PresenceError> {
        let step_ms = 1000.0 / limit.per_second;
        let mut invocation = self.inner.rates.prepare_invoke();
        invocation.arg(now);
        for (key, admitted) in chunk {
            invocation
                .key(key_of(key))
                .arg(*admitted)
                .arg(step_ms)
                .arg(limit.burst);
        }
        let mut conn = self.inner.conn.clone();
        let totals: Vec<String> = self.answered(invocation.invoke_async(&mut conn).await)?;
        Ok(totals.iter().map(|t| t.parse().unwrap_or(now)).collect())
    }
}
