//! One state transition of the Redis store, as the rules decided it: guards (what the decision
//! was made on) and writes, applied atomically by [`commit.lua`](commit.lua) if every guard
//! still holds. A transition whose guards fail is decided again from a fresh load.

use super::keys;
use super::RedisPresence;
use crate::error::PresenceError;

/// Tries of one change before giving up on a room that changes under it every time.
pub(super) const MAX_TRIES: usize = 64;

/// One guard or write: its op (see commit.lua), its key (none for `pub`), its operands.
#[derive(Debug, Clone)]
struct Op {
    name: &'static str,
    key: Option<String>,
    rest: Vec<String>,
}

impl Op {
    fn is_guard(&self) -> bool {
        matches!(self.name, "eq" | "heq")
    }

    /// Whether, written in another slot than the room's, it goes before the room's commit:
    /// guards, and what adds to a user's holdings (so a cap holds while the room's commit is
    /// in flight; what it takes away goes after, so a failed room commit never frees a slot).
    fn goes_before(&self) -> bool {
        self.is_guard() || matches!(self.name, "sadd" | "hold")
    }
}

/// A transition being built: guards and writes, in order. Its first key is the room's (every
/// change's first guard is on its room); see [`RedisPresence::commit`] for keys in other slots.
#[derive(Debug, Default, Clone)]
pub(super) struct Transition {
    ops: Vec<Op>,
}

impl Transition {
    fn guard(&mut self, name: &'static str, key: &str, rest: &[&str]) -> &mut Self {
        self.push(name, key, rest)
    }

    fn write(&mut self, name: &'static str, key: &str, rest: &[&str]) -> &mut Self {
        self.push(name, key, rest)
    }

    fn push(&mut self, name: &'static str, key: &str, rest: &[&str]) -> &mut Self {
        self.ops.push(Op {
            name,
            key: Some(key.to_string()),
            rest: rest.iter().map(|s| s.to_string()).collect(),
        });
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

    /// Sets a field of a versioned hash (see commit.lua's `hold`).
    pub fn hold(&mut self, key: &str, field: &str, value: &str, version: &str) -> &mut Self {
        self.write("hold", key, &[field, value, version])
    }

    /// Removes a field of a versioned hash (see commit.lua's `free`).
    pub fn free(&mut self, key: &str, field: &str, version: &str) -> &mut Self {
        self.write("free", key, &[field, version])
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
        self.ops.push(Op {
            name: "pub",
            key: None,
            rest: vec![channel.to_string(), message.to_string()],
        });
    }

    /// The slot of the room (its first key), if any key.
    fn room_slot<'a>(&'a self, layout: &keys::Layout) -> Option<&'a str> {
        self.ops
            .iter()
            .find_map(|op| op.key.as_deref())
            .map(|k| layout.slot(k))
    }

    /// Split by slot: the parts to commit before the room's (one per other slot), the room's,
    /// and the parts after it. With every key in the room's slot: `None`.
    fn split(
        &self,
        layout: &keys::Layout,
    ) -> Option<(Vec<Transition>, Transition, Vec<Transition>)> {
        let room = self.room_slot(layout)?;
        let other = |op: &Op| op.key.as_deref().is_some_and(|k| layout.slot(k) != room);
        if !self.ops.iter().any(other) {
            return None;
        }
        let mut before: Vec<(String, Transition)> = Vec::new();
        let mut after: Vec<(String, Transition)> = Vec::new();
        let mut main = Transition::default();
        for op in &self.ops {
            if !other(op) {
                main.ops.push(op.clone());
                continue;
            }
            let tag = layout
                .slot(op.key.as_deref().unwrap_or_default())
                .to_string();
            let side = if op.goes_before() {
                &mut before
            } else {
                &mut after
            };
            match side.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, t)) => t.ops.push(op.clone()),
                None => side.push((
                    tag,
                    Transition {
                        ops: vec![op.clone()],
                    },
                )),
            }
        }
        let parts = |v: Vec<(String, Transition)>| v.into_iter().map(|(_, t)| t).collect();
        Some((parts(before), main, parts(after)))
    }

    /// What takes back this part's additions (see [`Op::goes_before`]) once its room's commit
    /// failed: the sessions it held freed. (A room added to a user's listed set stays: a lookup
    /// re-reads the room and skips it.)
    fn undo(&self) -> Transition {
        let mut undo = Transition::default();
        for op in &self.ops {
            if let ("hold", Some(key), [field, ..]) = (op.name, &op.key, op.rest.as_slice()) {
                let version = crate::server::token::SessionToken::generate().to_hex();
                undo.free(key, field, &version);
            }
        }
        undo
    }
}

impl RedisPresence {
    /// Applies a transition: `true` if it was, `false` if a guard failed (decide again).
    ///
    /// With slot groups a change can also touch its user's keys in another slot (the user's
    /// rooms and listed set). Those parts are separate scripts: guards and additions first
    /// (a join's cap holds from then on), the room's commit, then removals. If the room's
    /// commit fails, the additions are undone. A server that stops between two parts leaves a
    /// session held by the user that no room has (the cap is stricter, never looser) until a
    /// recount frees it (see [`recount`](super::recount)).
    pub(super) async fn commit(&self, t: &Transition) -> Result<bool, PresenceError> {
        let Some((before, main, after)) = t.split(&self.inner.layout) else {
            return self.commit_one(t).await;
        };
        for (i, part) in before.iter().enumerate() {
            if !self.commit_one(part).await? {
                for done in &before[..i] {
                    self.commit_one(&done.undo()).await?;
                }
                return Ok(false);
            }
        }
        if !self.commit_one(&main).await? {
            for done in &before {
                self.commit_one(&done.undo()).await?;
            }
            return Ok(false);
        }
        for part in &after {
            // The change is made: a removal that did not land leaves a session held that no
            // room has, which a recount frees (see `recount`), not a change to report as failed.
            let _ = self.commit_one(part).await;
        }
        Ok(true)
    }

    /// One call of commit.lua: every key in one slot.
    async fn commit_one(&self, t: &Transition) -> Result<bool, PresenceError> {
        // (Guards alone are still sent: the answer is whether they hold.)
        if t.ops.is_empty() {
            return Ok(true);
        }
        let mut keys: Vec<&str> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        // Guards first (commit.lua writes nothing unless every guard holds).
        let (guards, writes): (Vec<&Op>, Vec<&Op>) = t.ops.iter().partition(|op| op.is_guard());
        for op in guards.into_iter().chain(writes) {
            args.push(op.name.to_string());
            if let Some(key) = &op.key {
                let at = match keys.iter().position(|k| k == key) {
                    Some(at) => at,
                    None => {
                        keys.push(key);
                        keys.len() - 1
                    }
                };
                args.push((at + 1).to_string());
            }
            args.extend(op.rest.iter().cloned());
        }
        let mut invocation = self.inner.commit.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in &args {
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

#[cfg(test)]
mod tests {
    use super::super::keys::Layout;
    use super::Transition;

    fn grouped() -> Layout {
        Layout::new("p", false, 4)
    }

    fn names(t: &Transition) -> Vec<(&str, &str)> {
        t.ops
            .iter()
            .map(|op| (op.name, op.key.as_deref().unwrap_or("")))
            .collect()
    }

    #[test]
    fn keys_in_one_slot_are_one_commit() {
        let mut t = Transition::default();
        t.expect("{p:1}:r:2:r1:seq", "")
            .hold("{p:1}:uh:ann", "r1\ns1", "5", "v")
            .del("{p:1}:r:2:r1:n");
        assert!(t.split(&grouped()).is_none());
    }

    #[test]
    fn with_one_group_every_key_is_in_one_commit_with_or_without_braces() {
        for layout in [
            Layout::new("presence", false, 1),
            Layout::new("presence", true, 1),
        ] {
            let room = layout.room("r1");
            let mut t = Transition::default();
            t.expect(&room.seq(), "")
                .expect_field(&layout.user_rooms("ann"), "\n", "v0")
                .hold(&layout.user_rooms("ann"), "r1\ns1", "5", "v1")
                .sadd(&layout.user_listed("ann"), "r1")
                .set(&room.sessions(), "1")
                .zadd(room.deadlines(), 5, "s\nr1\ns1")
                .set(&layout.token("ab"), "r1\ns1");
            assert!(t.split(&layout).is_none(), "{layout:?}");
        }
    }

    #[test]
    fn a_users_guards_and_additions_go_before_the_room_and_its_removals_after() {
        let mut t = Transition::default();
        t.expect("{p:1}:r:2:r1:seq", "")
            .expect_field("{p:2}:uh:ann", "\n", "v0")
            .hold("{p:2}:uh:ann", "r1\ns1", "5", "v1")
            .sadd("{p:2}:ul:ann", "r1")
            .set("{p:1}:r:2:r1:n", "1")
            .free("{p:2}:uh:ann", "r0\ns0", "v2")
            .srem("{p:2}:ul:ann", "r0");
        t.publish("p:ev:r1", "{}");
        let (before, room, after) = t.split(&grouped()).expect("two slots");
        assert_eq!(before.len(), 1);
        assert_eq!(
            names(&before[0]),
            [
                ("heq", "{p:2}:uh:ann"),
                ("hold", "{p:2}:uh:ann"),
                ("sadd", "{p:2}:ul:ann")
            ]
        );
        assert_eq!(
            names(&room),
            [
                ("eq", "{p:1}:r:2:r1:seq"),
                ("set", "{p:1}:r:2:r1:n"),
                ("pub", "")
            ]
        );
        assert_eq!(after.len(), 1);
        assert_eq!(
            names(&after[0]),
            [("free", "{p:2}:uh:ann"), ("srem", "{p:2}:ul:ann")]
        );
        // Undoing what went before frees the session it held, and nothing else.
        let undo = before[0].undo();
        assert_eq!(names(&undo), [("free", "{p:2}:uh:ann")]);
        assert_eq!(undo.ops[0].rest[0], "r1\ns1");
    }
}
