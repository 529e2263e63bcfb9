//! One state transition of the Redis store, as the rules decided it: guards (what the decision
//! was made on) and writes, applied atomically by [`commit.lua`](commit.lua) if every guard
//! still holds. A transition whose guards fail is decided again from a fresh load.

use super::RedisPresence;
use crate::error::PresenceError;

/// Tries of one change before giving up on a room that changes under it every time.
pub(super) const MAX_TRIES: usize = 64;

/// A transition being built: keys are declared once each, guards come before writes.
#[derive(Debug, Default)]
pub(super) struct Transition {
    keys: Vec<String>,
    guards: Vec<String>,
    writes: Vec<String>,
}

impl Transition {
    /// The index (1-based, as Lua's KEYS) of a key, declaring it if new.
    fn key(&mut self, key: &str) -> String {
        let at = match self.keys.iter().position(|k| k == key) {
            Some(at) => at,
            None => {
                self.keys.push(key.to_string());
                self.keys.len() - 1
            }
        };
        (at + 1).to_string()
    }

    fn guard(&mut self, op: &str, key: &str, rest: &[&str]) -> &mut Self {
        let k = self.key(key);
        self.guards.push(op.to_string());
        self.guards.push(k);
        self.guards.extend(rest.iter().map(|s| s.to_string()));
        self
    }

    fn write(&mut self, op: &str, key: &str, rest: &[&str]) -> &mut Self {
        let k = self.key(key);
        self.writes.push(op.to_string());
        self.writes.push(k);
        self.writes.extend(rest.iter().map(|s| s.to_string()));
        self
    }

    /// Guard: the string at `key` is `value` (`""`: there is none).
    pub fn expect(&mut self, key: &str, value: &str) -> &mut Self {
        self.guard("eq", key, &[value])
    }

    /// Guard: the hash field is `value` (`""`: there is none).
    pub fn expect_field(&mut self, key: &str, field: &str, value: &str) -> &mut Self {
        self.guard("heq", key, &[field, value])
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.write("set", key, &[value])
    }

    pub fn del(&mut self, key: &str) -> &mut Self {
        self.write("del", key, &[])
    }

    pub fn hset(&mut self, key: &str, field: &str, value: &str) -> &mut Self {
        self.write("hset", key, &[field, value])
    }

    pub fn hdel(&mut self, key: &str, field: &str) -> &mut Self {
        self.write("hdel", key, &[field])
    }

    pub fn zadd(&mut self, key: &str, score: u64, member: &str) -> &mut Self {
        self.write("zadd", key, &[&score.to_string(), member])
    }

    pub fn zrem(&mut self, key: &str, member: &str) -> &mut Self {
        self.write("zrem", key, &[member])
    }

    pub fn sadd(&mut self, key: &str, member: &str) -> &mut Self {
        self.write("sadd", key, &[member])
    }

    pub fn srem(&mut self, key: &str, member: &str) -> &mut Self {
        self.write("srem", key, &[member])
    }

    /// Adds `by` to a counter field of a versioned hash (see commit.lua's `count`).
    pub fn count(&mut self, key: &str, field: &str, by: i64, version: &str) -> &mut Self {
        self.write("count", key, &[field, &by.to_string(), version])
    }

    /// Queues a deadline unless it is queued earlier; announces a new earliest on `wake`.
    pub fn schedule(&mut self, key: &str, at: u64, member: &str, wake: &str) -> &mut Self {
        self.write("sched", key, &[&at.to_string(), member, wake])
    }

    /// Queues a deadline at `at`, earlier or later than it is queued; announces a new earliest on
    /// `wake` (a claimed entry put back at its real time: the other servers' schedulers may be
    /// sleeping until the claim's lease ends).
    pub fn requeue(&mut self, key: &str, at: u64, member: &str, wake: &str) -> &mut Self {
        self.write("queue", key, &[&at.to_string(), member, wake])
    }

    pub fn publish(&mut self, channel: &str, message: &str) {
        self.writes.push("pub".into());
        self.writes.push(channel.to_string());
        self.writes.push(message.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

impl RedisPresence {
    /// Applies a transition: `true` if it was, `false` if a guard failed (decide again).
    pub(super) async fn commit(&self, t: &Transition) -> Result<bool, PresenceError> {
        if t.is_empty() {
            return Ok(true);
        }
        let mut invocation = self.inner.commit.prepare_invoke();
        for key in &t.keys {
            invocation.key(key);
        }
        for arg in t.guards.iter().chain(&t.writes) {
            invocation.arg(arg);
        }
        let mut conn = self.inner.conn.clone();
        let applied: i64 = self.answered(invocation.invoke_async(&mut conn).await)?;
        Ok(applied == 1)
    }
}

/// A room that changed under every try.
pub(super) fn contended() -> PresenceError {
    PresenceError::Unavailable {
        message: "the presence store is too busy with this room; try again".into(),
    }
}
