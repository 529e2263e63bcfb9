//! The deadline queue: a min-heap of (time, key) that the scheduler sleeps on.
//!
//! Entries are lazy. A heartbeat only stores the session's new deadline (a later time) and
//! touches no queue; when an entry comes due, its owner's real deadline is checked and, if it
//! moved later, one new entry is pushed. Only a deadline that moves *earlier* (a grace period,
//! a shorter interval) pushes at once. An entry is live only while its owner still holds its key,
//! so replaced entries are skipped when popped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// A queued deadline of an owner, identified by `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub at: u64,
    pub key: u64,
}

/// Whose deadline an entry is. Ordered as the Redis store orders its due entries (by kind, then
/// room, then id, as the bytes of `"s\n<room>\n<id>"` compare), so deadlines that fall in the
/// same millisecond are handled in the same order by both stores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    /// A session's expiry.
    Session { room: Arc<str>, session: Arc<str> },
    /// An offline user's end of retention.
    OfflineUser { room: Arc<str>, user: Arc<str> },
}

#[derive(Debug)]
struct Entry {
    timer: Timer,
    owner: Owner,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.timer.at, &self.owner, self.timer.key).cmp(&(
            other.timer.at,
            &other.owner,
            other.timer.key,
        ))
    }
}

#[derive(Debug, Default)]
pub(crate) struct DeadlineQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    next_key: u64,
    head_moved_earlier: bool,
}

impl DeadlineQueue {
    /// Queues `owner` at `at`; returns the timer the owner must hold for the entry to count.
    pub fn push(&mut self, at: u64, owner: Owner) -> Timer {
        self.next_key += 1;
        let timer = Timer {
            at,
            key: self.next_key,
        };
        if self.peek().is_none_or(|head| at < head) {
            self.head_moved_earlier = true;
        }
        self.heap.push(Reverse(Entry { timer, owner }));
        timer
    }

    /// The earliest queued time (possibly of a replaced entry: popping it is then a no-op).
    pub fn peek(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e.timer.at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(Timer, Owner)> {
        if self.peek()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.timer, e.owner))
    }

    /// True (once) if a push made the earliest deadline earlier: the scheduler must re-plan.
    /// Keeps only the entries `live` accepts (an O(n) rebuild).
    pub fn retain(&mut self, mut live: impl FnMut(&Timer, &Owner) -> bool) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse(e)| live(&e.timer, &e.owner))
            .collect();
    }

    pub fn take_head_moved_earlier(&mut self) -> bool {
        std::mem::take(&mut self.head_moved_earlier)
    }

    /// Number of entries, live and replaced.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Owner {
        Owner::Session {
            room: "r".into(),
            session: s.into(),
        }
    }

    #[test]
    fn pops_in_time_order_and_only_when_due() {
        let mut q = DeadlineQueue::default();
        q.push(30, owner("c"));
        q.push(10, owner("a"));
        q.push(20, owner("b"));
        assert_eq!(q.peek(), Some(10));
        assert!(q.pop_due(9).is_none());
        assert_eq!(q.pop_due(25).unwrap().1, owner("a"));
        assert_eq!(q.pop_due(25).unwrap().1, owner("b"));
        assert!(q.pop_due(25).is_none());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn deadlines_of_one_millisecond_pop_in_owner_order_not_push_order() {
        let mut q = DeadlineQueue::default();
        q.push(10, owner("b"));
        q.push(10, owner("a"));
        q.push(
            10,
            Owner::OfflineUser {
                room: "r".into(),
                user: "a".into(),
            },
        );
        assert_eq!(q.pop_due(10).unwrap().1, owner("a"));
        assert_eq!(q.pop_due(10).unwrap().1, owner("b"));
        assert!(matches!(
            q.pop_due(10).unwrap().1,
            Owner::OfflineUser { .. }
        ));
    }

    #[test]
    fn reports_when_the_head_moves_earlier() {
        let mut q = DeadlineQueue::default();
        q.push(100, owner("a"));
        assert!(q.take_head_moved_earlier());
        assert!(!q.take_head_moved_earlier());
        q.push(200, owner("b"));
        assert!(!q.take_head_moved_earlier());
        q.push(50, owner("c"));
        assert!(q.take_head_moved_earlier());
    }
}
