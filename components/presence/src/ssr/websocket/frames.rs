//! What one compressed subscriber's next message goes out as: the room stream's bytes when its
//! window holds what they refer to, else the message compressed on its own (made once and
//! shared too). A subscriber keeps no compressor, only the message it sent last.

use super::deflate::Deflater;
use super::negotiate::Agreed;
use super::stream::{RoomStream, STREAM_WINDOW_BITS};
use presence_core::server::{Encoded, Encoding, SharedMessage};
use presence_core::wire::RoomMessage;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, Weak};

/// One subscriber's side of the room stream.
#[derive(Debug)]
pub(crate) struct Frames {
    /// The room's stream, if this subscriber may read it (it agreed to a window that spans
    /// messages and is at least the stream's).
    stream: Option<Arc<Mutex<RoomStream>>>,
    /// The change sent last, if the last message was one (held, so that its address names it
    /// and nothing else).
    last: Option<Arc<SharedMessage>>,
    /// Whether the receiver's window holds what the stream's bytes after `last` refer to.
    synced: bool,
    /// The window agreed for this subscriber.
    window_bits: u8,
}

impl Frames {
    pub(crate) fn new(agreed: Agreed, stream: Arc<Mutex<RoomStream>>) -> Self {
        let readable = agreed.takeover && agreed.window_bits >= STREAM_WINDOW_BITS;
        Frames {
            stream: readable.then_some(stream),
            last: None,
            synced: false,
            window_bits: agreed.window_bits,
        }
    }

    /// The compressed payload of `message`, the next one this subscriber is sent; `None` to
    /// send it as plain text. Snapshots and changes are compressed (they are mostly repeats);
    /// summaries are not: small and coalesced, they would save little, and thousands of
    /// receivers would each spend time inflating them.
    pub(crate) fn payload<'m>(&mut self, message: &'m Arc<SharedMessage>) -> Option<Cow<'m, [u8]>> {
        let change = match message.message() {
            RoomMessage::Joined { .. }
            | RoomMessage::Left { .. }
            | RoomMessage::Updated { .. }
            | RoomMessage::Removed { .. } => true,
            RoomMessage::Snapshot(_) => false,
            _ => {
                // A plain message does not enter the receiver's window, but take nothing for
                // granted: the stream waits for its next fresh start.
                self.synced = false;
                self.last = None;
                return None;
            }
        };
        let streamed = match &self.stream {
            Some(stream) if change => Some(message.encoded(Encoding::Stream, |json| {
                stream
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .encode(message, json)
            })),
            _ => None,
        };
        // The stream's bytes read right here when they refer to nothing, or to the message
        // this subscriber got last while its window was in step.
        let follows_last = |after: &Weak<SharedMessage>| {
            self.last
                .as_ref()
                .is_some_and(|last| Weak::ptr_eq(after, &Arc::downgrade(last)))
        };
        let in_step = streamed.map(|encoded| match &encoded.after {
            None => (true, true),
            Some(after) => {
                let step = self.synced && follows_last(after);
                (step, step)
            }
        });
        let (use_stream, synced) = in_step.unwrap_or((false, false));
        let bytes = match streamed {
            Some(encoded) if use_stream => Cow::Borrowed(&encoded.bytes[..]),
            // A client that asked for a smaller window than the shared bytes use.
            _ if self.window_bits < STREAM_WINDOW_BITS => Cow::Owned(
                Deflater::new(self.window_bits, false).compress(message.json().as_bytes()),
            ),
            _ => Cow::Borrowed(
                &message
                    .encoded(Encoding::Alone, |json| {
                        Encoded::new(
                            Deflater::new(STREAM_WINDOW_BITS, false).compress(json.as_bytes()),
                            None,
                        )
                    })
                    .bytes[..],
            ),
        };
        // Whatever it came as, the receiver's window now ends with this message: in step with
        // the stream if the stream's bytes for it follow what the window held.
        self.synced = synced;
        // Only a change can be what the stream's bytes refer to (and a snapshot, which can be
        // big, is not kept alive for it).
        self.last = change.then(|| message.clone());
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::negotiate::negotiate;
    use super::super::stream::Streams;
    use super::super::test_support::{inflate, Lcg};
    use super::*;
    use flate2::Decompress;
    use presence_core::wire::{RoomSnapshot, SessionPresence, UserPresence};

    fn user(i: u64) -> UserPresence {
        let mut session = SessionPresence::new(format!("session-{i}"), format!("User {i}"));
        session.joined_seq = i;
        session.joined_at = 1_764_700_000_000 + 977 * i;
        let mut user = UserPresence::new(format!("user-{i}"), format!("User {i}"), vec![session]);
        user.online_since = i;
        user
    }

    fn joined(seq: u64) -> Arc<SharedMessage> {
        let user = user(seq);
        Arc::new(SharedMessage::new(RoomMessage::Joined {
            seq,
            session_id: format!("session-{seq}"),
            session: user.sessions[0].clone(),
            user: user.head(),
        }))
    }

    fn snapshot(seq: u64) -> Arc<SharedMessage> {
        let users = (1..=seq).map(user).collect();
        Arc::new(SharedMessage::new(RoomMessage::Snapshot(
            RoomSnapshot::new("r", seq, users),
        )))
    }

    /// A subscriber as the pump drives it, with a browser's inflater at the other end.
    struct Subscriber {
        frames: Frames,
        decoder: Decompress,
        /// The seq of the change it gets next.
        next: u64,
        bytes: usize,
        changes: usize,
    }

    impl Subscriber {
        /// A subscriber of room "r" that got its snapshot at `seq`.
        fn new(streams: &Streams, agreed: Agreed, seq: u64) -> Self {
            let mut s = Subscriber {
                frames: Frames::new(agreed, streams.of("r")),
                decoder: Decompress::new(false),
                next: seq + 1,
                bytes: 0,
                changes: 0,
            };
            s.send(&snapshot(seq));
            s
        }

        fn send(&mut self, message: &Arc<SharedMessage>) {
            let payload = self.frames.payload(message).expect("compressed");
            assert_eq!(
                inflate(&mut self.decoder, &payload),
                message.json().as_bytes(),
                "seq {}",
                message.message().seq()
            );
            if !matches!(message.message(), RoomMessage::Snapshot(_)) {
                self.bytes += payload.len();
                self.changes += 1;
            }
        }
    }

    /// Subscribers joining at different moments, each at its own pace (so any of them may be
    /// the first to need a change's bytes), some falling behind and resynced, some that asked
    /// for no window or a small one: every message inflates to itself at every one of them.
    #[test]
    fn every_subscriber_reads_every_message_whoever_compressed_it_first() {
        let offers = [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=9",
        ];
        for seed in 1..=8 {
            let mut rng = Lcg(seed);
            let streams = Streams::default();
            let changes: Vec<_> = (1..=400).map(joined).collect();
            let mut subscribers: Vec<Subscriber> = Vec::new();
            let mut published = 0u64;
            for _ in 0..6000 {
                // The room moves on, or someone subscribes, or a subscriber takes a message.
                match rng.below(10) {
                    0 if published < 400 => published += 1,
                    1 if subscribers.len() < 12 => {
                        let offer =
                            offers[(rng.below(8) as usize).min(2) * usize::from(rng.below(3) == 0)];
                        let agreed = negotiate([offer]).unwrap();
                        subscribers.push(Subscriber::new(&streams, agreed, published));
                    }
                    2 if !subscribers.is_empty() && rng.below(20) == 0 => {
                        // Fell behind: a fresh snapshot, then on from there.
                        let pick = rng.below(subscribers.len() as u64) as usize;
                        let s = &mut subscribers[pick];
                        s.send(&snapshot(published));
                        s.next = published + 1;
                    }
                    _ if !subscribers.is_empty() => {
                        let pick = rng.below(subscribers.len() as u64) as usize;
                        let s = &mut subscribers[pick];
                        if s.next <= published {
                            s.send(&changes[s.next as usize - 1]);
                            s.next += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn subscribers_in_step_get_the_streams_bytes_and_a_newcomer_joins_them_soon() {
        let streams = Streams::default();
        let agreed = negotiate(["permessage-deflate"]).unwrap();
        let new = |seq| Subscriber::new(&streams, agreed, seq);
        let mut early = new(0);
        let changes: Vec<_> = (1..=300).map(joined).collect();
        for change in &changes[..100] {
            early.send(change);
        }
        let mut late = new(100);
        for change in &changes[100..] {
            late.send(change);
            early.send(change);
            // One compression each, shared: both got the very same bytes once in step.
        }
        let alone: usize = changes
            .iter()
            .map(|c| Deflater::new(12, false).compress(c.json().as_bytes()).len())
            .sum();
        let raw: usize = changes.iter().map(|c| c.json().len()).sum();
        // Measured: ~60 bytes a change on the stream, ~170 alone, ~290 raw.
        assert!(
            early.bytes * 2 < alone,
            "stream {} vs alone {alone}",
            early.bytes
        );
        assert!(early.bytes * 4 < raw, "stream {} vs raw {raw}", early.bytes);
        // The newcomer waited at most RESTART_EVERY changes for the stream, then kept to it.
        let late_alone: usize = alone * 200 / 300;
        assert!(
            late.bytes * 3 < late_alone * 2,
            "late {} vs {late_alone}",
            late.bytes
        );
    }
}
