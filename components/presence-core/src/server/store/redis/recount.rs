//! The sessions a user holds (for the per-user caps), made to agree with the rooms again.
//!
//! A user's rooms hash (`U:uh:<uid>`) has one field per session the user holds,
//! `<room>\n<sid>`, valued with when it was held from. With slot groups it is written in the
//! user's own slot, apart from the room's commit (see [`commit`](super::commit)): a join holds
//! its session before its room commits (and frees it if that fails), a leave frees it after.
//! A server that stops in between leaves a session held that no room has, so the user's cap is
//! stricter than it should be. Before a join is refused for a per-user cap, each session held
//! for longer than [`IN_FLIGHT_MS`] is looked up in its room, and freed if the room does not
//! have it. Holding and freeing are idempotent, so a recount that races a leave or a failed
//! join frees nothing twice; a join in flight (held, its room not yet committed) is younger
//! than [`IN_FLIGHT_MS`] and is left alone.

use super::commit::Transition;
use super::keys;
use super::RedisPresence;
use crate::error::PresenceError;
use crate::server::rules::UserFacts;
use crate::server::token::SessionToken;

/// A session held for less than this may be a join whose room has not committed yet.
pub(super) const IN_FLIGHT_MS: u64 = 10_000;

impl RedisPresence {
    /// Frees the sessions `user` holds (`held`: room, id, since when; the hash at `version`)
    /// that their rooms do not have: true if any was (or the hash moved meanwhile: decide
    /// again).
    pub(super) async fn recount_user(
        &self,
        user: &str,
        held: &[(String, String, u64)],
        version: &str,
        now: u64,
    ) -> Result<bool, PresenceError> {
        let layout = &self.inner.layout;
        let settled: Vec<&(String, String, u64)> = held
            .iter()
            .filter(|(_, _, at)| at.saturating_add(IN_FLIGHT_MS) <= now)
            .collect();
        let mut rooms: Vec<&str> = settled.iter().map(|(room, _, _)| room.as_str()).collect();
        rooms.sort_unstable();
        rooms.dedup();
        if rooms.is_empty() {
            return Ok(false);
        }
        let facts = self
            .listings(rooms.iter().map(|room| (*room, user)))
            .await?;
        let facts: Vec<Option<UserFacts>> = facts
            .into_iter()
            .map(|json| json.and_then(|j| serde_json::from_str(&j).ok()))
            .collect();
        let key = layout.user_rooms(user);
        let mut t = Transition::default();
        t.expect_field(&key, keys::VERSION_FIELD, version);
        let mut freed = false;
        for (room, sid, _) in settled {
            let at = rooms.binary_search(&room.as_str()).expect("listed above");
            let live = facts[at].as_ref().is_some_and(|f| f.session(sid).is_some());
            if !live {
                freed = true;
                let version = SessionToken::generate().to_hex();
                t.free(&key, &keys::held_session(room, sid), &version);
            }
        }
        if !freed {
            return Ok(false);
        }
        self.commit(&t).await?;
        Ok(true)
    }
}
