//! Reads and scripts over keys in several slots (slot groups, see [`super::keys::Layout`]): a
//! Redis Cluster refuses a pipeline or a script whose keys hash to different slots, so each
//! batch is cut into one per slot, sent side by side, and the answers put back in order.

use super::keys::Layout;
use super::RedisPresence;
use crate::error::PresenceError;
use std::collections::BTreeMap;

/// The indexes of `keys`, grouped by the slot each is in (with one group: all in one).
pub(super) fn by_slot<'a>(
    layout: &Layout,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        groups.entry(layout.slot(key)).or_default().push(i);
    }
    groups.into_values().collect()
}

impl RedisPresence {
    /// Runs single-key commands (`(key, command)`), pipelined one pipeline per slot; the
    /// answers in the order given.
    pub(super) async fn query_each<T>(
        &self,
        commands: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<T>, PresenceError>
    where
        T: redis::FromRedisValue + Send,
    {
        let groups = by_slot(&self.inner.layout, commands.iter().map(|(k, _)| k.as_str()));
        let sent = groups.iter().map(|indexes| {
            let mut pipe = redis::pipe();
            for &i in indexes {
                pipe.add_command(commands[i].1.clone());
            }
            let mut conn = self.inner.conn.clone();
            async move { pipe.query_async::<Vec<T>>(&mut conn).await }
        });
        let answers = futures_util::future::join_all(sent).await;
        let mut out: Vec<Option<T>> = (0..commands.len()).map(|_| None).collect();
        for (indexes, answer) in groups.iter().zip(answers) {
            for (&i, value) in indexes.iter().zip(self.answered(answer)?) {
                out[i] = Some(value);
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| super::malformed_reply("a pipeline")))
            .collect()
    }
}

impl RedisPresence {
    /// What each room lists of each user (`(room, user)` pairs): the facts' JSON, `None` where
    /// it does not list it; read one pipeline per slot.
    pub(super) async fn listings<'a>(
        &self,
        wanted: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<Option<String>>, PresenceError> {
        let reads: Vec<(String, redis::Cmd)> = wanted
            .into_iter()
            .map(|(room, user)| {
                let key = self.inner.layout.room(room).users();
                let mut cmd = redis::cmd("HGET");
                cmd.arg(&key).arg(user);
                (key, cmd)
            })
            .collect();
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        self.query_each(reads).await
    }
}

#[cfg(test)]
mod tests {
    use super::by_slot;
    use super::Layout;

    #[test]
    fn keys_are_grouped_by_their_slot_and_keep_their_order_within_a_group() {
        let keys = ["{p:1}:a", "{p:2}:b", "{p:1}:c", "plain", "{}:x", "{p:2}:d"];
        let mut groups = by_slot(&Layout::new("p", false, 2), keys);
        groups.sort();
        // `{}` is no tag: the whole key is hashed.
        assert_eq!(groups, vec![vec![0, 2], vec![1, 5], vec![3], vec![4]]);
        // With one group, every key of the store is in one slot, braces or not.
        for layout in [Layout::new("p", false, 1), Layout::new("p", true, 1)] {
            assert_eq!(by_slot(&layout, keys), vec![vec![0, 1, 2, 3, 4, 5]]);
        }
    }
}
