//! One compressed stream of a room's changes, shared by every subscriber of the room on this
//! server: a change is compressed once, against the changes before it, not once per subscriber.
//!
//! A receiver's window holds what it inflated last, whatever the bytes it came as. So bytes
//! that refer back to change `p` read right for every subscriber whose previous message was
//! `p` and whose window already held what `p`'s bytes referred to: [`Frames`](super::frames)
//! checks that chain for each subscriber. The stream starts afresh every [`RESTART_EVERY`]
//! changes (and whenever a change does not follow the last one), so a newcomer joins it within
//! that many changes.

use super::deflate::Deflater;
use presence_core::server::{Encoded, SharedMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// The stream's window: 2^12 = 4 KB, a dozen join diffs.
pub(crate) const STREAM_WINDOW_BITS: u8 = 12;
/// Changes between fresh starts: what a newcomer waits at most before it can read the stream
/// (it gets each change compressed on its own meanwhile).
pub(crate) const RESTART_EVERY: usize = 32;

/// A room's stream: its compressor and the change it compressed last.
#[derive(Debug)]
pub(crate) struct RoomStream {
    deflater: Deflater,
    last: Option<(u64, Weak<SharedMessage>)>,
    since_restart: usize,
}

impl RoomStream {
    fn new() -> Self {
        RoomStream {
            deflater: Deflater::new(STREAM_WINDOW_BITS, true),
            last: None,
            since_restart: 0,
        }
    }

    /// `message` (a change, its JSON `json`) compressed as the stream's next: after the last
    /// one when it is the next change of the room, afresh otherwise.
    pub(crate) fn encode(&mut self, message: &Arc<SharedMessage>, json: &str) -> Encoded {
        let seq = message.message().seq();
        let follows = match &self.last {
            Some((last, _)) => *last + 1 == seq && self.since_restart < RESTART_EVERY,
            None => false,
        };
        let after = if follows {
            self.last.take().map(|(_, last)| last)
        } else {
            self.deflater = Deflater::new(STREAM_WINDOW_BITS, true);
            self.since_restart = 0;
            None
        };
        let bytes = self.deflater.compress(json.as_bytes());
        self.since_restart += 1;
        self.last = Some((seq, Arc::downgrade(message)));
        Encoded::new(bytes, after)
    }
}

/// Every room's stream on this server, while some subscriber of the room holds it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Streams {
    rooms: Arc<Mutex<HashMap<String, Weak<Mutex<RoomStream>>>>>,
}

impl Streams {
    /// The stream of `room`, started if nobody holds it.
    pub(crate) fn of(&self, room: &str) -> Arc<Mutex<RoomStream>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = rooms.get(room).and_then(Weak::upgrade) {
            return stream;
        }
        // Forget rooms nobody holds any more, now and then (amortised over the map's growth).
        if rooms.len() >= 64 && rooms.len().is_power_of_two() {
            rooms.retain(|_, stream| stream.strong_count() > 0);
        }
        let stream = Arc::new(Mutex::new(RoomStream::new()));
        rooms.insert(room.to_owned(), Arc::downgrade(&stream));
        stream
    }
}
