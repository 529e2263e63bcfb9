//! Changes to one room from this server take turns. Each change is decided on what it read and
//! committed only if the room has not moved since (see [`commit`](super::commit)); two changes
//! to the same room from this server at once would fail each other's guard and be decided
//! again, so that a burst of joins to one room (a reconnect storm) would cost a round of reads
//! per join per join. In turn, only changes made through other servers can make a commit fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as Turn, OwnedMutexGuard};

/// The rooms that changes from this server are working on, each with its queue.
#[derive(Default)]
pub(super) struct Turns(Arc<Mutex<HashMap<String, Arc<Turn<()>>>>>);

/// One change's turn at a room: the next waits until this is dropped.
pub(super) struct RoomTurn {
    turns: Arc<Mutex<HashMap<String, Arc<Turn<()>>>>>,
    room: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for this server's earlier changes to `room`.
    pub async fn take(&self, room: &str) -> RoomTurn {
        let turn = super::lock(&self.0)
            .entry(room.to_string())
            .or_default()
            .clone();
        RoomTurn {
            turns: self.0.clone(),
            room: room.to_string(),
            guard: Some(turn.lock_owned().await),
        }
    }

    #[cfg(test)]
    pub fn rooms(&self) -> usize {
        super::lock(&self.0).len()
    }
}

impl Drop for RoomTurn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut turns = super::lock(&self.turns);
        // Nobody else holds or waits for it: the room's queue goes (the map holds one).
        if turns
            .get(&self.room)
            .is_some_and(|t| Arc::strong_count(t) == 1)
        {
            turns.remove(&self.room);
        }
    }
}
