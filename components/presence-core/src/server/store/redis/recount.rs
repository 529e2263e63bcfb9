//! A user's count of live sessions per room, made to agree with the rooms again.
//!
//! With slot groups a user's rooms hash (`U:uh:<uid>`, the per-user caps) is written in its
//! own slot, apart from the room's commit (see [`commit`](super::commit)). A server that stops
//! between the two leaves a count one too high, so the user's cap is stricter than it should
//! be. Before a join is refused for a per-user cap, the counts are read again from every room
//! the hash names and rewritten where they differ.
//!
//! A join in flight on another server at that moment (its count written, its room's commit
//! not yet) is not yet in its room, so a recount can take its count back: that user may then
//! hold one session over the cap, until one of its sessions ends.

use super::commit::Transition;
use super::keys;
use super::RedisPresence;
use crate::error::PresenceError;
use crate::server::rules::UserFacts;
use crate::server::token::SessionToken;
use std::collections::HashMap;

impl RedisPresence {
    /// Recounts `user`'s sessions in the rooms of its hash as loaded (`rooms`, at `version`):
    /// true if a count was wrong and is now right (or the hash moved meanwhile: decide again).
    pub(super) async fn recount_user(
        &self,
        user: &str,
        rooms: &HashMap<String, i64>,
        version: &str,
    ) -> Result<bool, PresenceError> {
        let layout = &self.inner.layout;
        let rooms: Vec<(&String, i64)> = rooms.iter().map(|(r, n)| (r, *n)).collect();
        let reads = rooms
            .iter()
            .map(|(room, _)| {
                let key = layout.room(room).users();
                let mut cmd = redis::cmd("HGET");
                cmd.arg(&key).arg(user);
                (key, cmd)
            })
            .collect();
        let facts: Vec<Option<String>> = self.query_each(reads).await?;
        let key = layout.user_rooms(user);
        let mut t = Transition::default();
        t.expect_field(&key, keys::VERSION_FIELD, version);
        let mut wrong = false;
        for ((room, stored), json) in rooms.iter().zip(facts) {
            let live = json
                .and_then(|j| serde_json::from_str::<UserFacts>(&j).ok())
                .map_or(0, |f| f.session_count() as i64);
            if live != *stored {
                wrong = true;
                let version = SessionToken::generate().to_hex();
                t.count(&key, room, live - stored, &version);
            }
        }
        if !wrong {
            return Ok(false);
        }
        self.commit(&t).await?;
        Ok(true)
    }
}
