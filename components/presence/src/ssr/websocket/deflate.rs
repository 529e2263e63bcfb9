//! A small DEFLATE compressor for `permessage-deflate` (RFC 7692): LZ77 over a short window kept
//! from one message to the next, and DEFLATE's fixed Huffman codes.
//!
//! Why not zlib: a room's changes are mostly the same JSON keys and the same ids as the change
//! before (a join diff is ~80 % repeats of the previous one), so what pays is a window that
//! spans messages, not a strong entropy coder. zlib keeps ~130–250 KB per stream (its hash
//! tables and buffers, whatever the window size); this keeps `2 × window + 8 KB` (16 KB at a
//! 4 KB window), small enough for one per room, and needs no C library or unsafe code.
//!
//! Each message ends as RFC 7692 §7.2.1 asks: the data, then an empty stored block whose
//! `00 00 ff ff` tail is left off (the receiver puts it back).

/// Hash table size (entries of the last position seen for each 3-byte hash).
const HASH_BITS: u32 = 11;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
/// Matches longer than this put only their ends in the hash table.
const LONG_MATCH: usize = 32;

/// Length codes 257..=285: the shortest length of each, and its extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Distance codes 0..=29: the shortest distance of each, and its extra bits.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// One direction of one compressed WebSocket: what it sent last (the window) and where.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// The last `window` bytes sent, then (while compressing) the message.
    history: Vec<u8>,
    /// For each hash of 3 bytes, 1 + the absolute position where they were last seen (0: never).
    heads: Vec<u32>,
    /// Absolute position of `history[0]` (wrapping; only differences are used).
    base: u32,
    window: usize,
    /// Whether a message may refer to earlier ones (`false`: `server_no_context_takeover`).
    takeover: bool,
    /// The longest distance used so far (what tests check against the window).
    #[cfg(test)]
    farthest: usize,
}

impl Deflater {
    /// A compressor whose matches reach back at most `2^window_bits` bytes, across
    /// messages when `takeover` (8..=15; RFC 7692 allows 8).
    pub(crate) fn new(window_bits: u8, takeover: bool) -> Self {
        let window_bits = window_bits.clamp(8, 15);
        Deflater {
            history: Vec::new(),
            heads: vec![0; 1 << HASH_BITS],
            base: 0,
            window: 1 << window_bits,
            takeover,
            #[cfg(test)]
            farthest: 0,
        }
    }

    /// The compressed payload of one message (without the `00 00 ff ff` tail).
    pub(crate) fn compress(&mut self, message: &[u8]) -> Vec<u8> {
        if !self.takeover {
            self.base = self.base.wrapping_add(self.history.len() as u32);
            self.history.clear();
        }
        let start = self.history.len();
        self.history.extend_from_slice(message);
        let mut out = Bits::with_capacity(message.len() / 2 + 16);
        out.put(0, 1); // not the final block
        out.put(1, 2); // fixed Huffman codes
        let mut i = start;
        while i < self.history.len() {
            let (length, distance) = self.longest_match(i);
            if length >= MIN_MATCH {
                out.length(length);
                out.distance(distance);
                #[cfg(test)]
                {
                    self.farthest = self.farthest.max(distance);
                }
                // Every position of a short match goes in the table; of a long one, its ends
                // (what the next message most likely repeats), which keeps snapshots cheap.
                if length <= LONG_MATCH {
                    (i..i + length).for_each(|p| self.remember(p));
                } else {
                    (i..i + 4).for_each(|p| self.remember(p));
                    (i + length - 4..i + length).for_each(|p| self.remember(p));
                }
                i += length;
            } else {
                out.literal(self.history[i]);
                self.remember(i);
                i += 1;
            }
        }
        out.code(0, 7); // end of block: symbol 256, the 7-bit code 0000000
        out.put(0, 3); // an empty stored block, not final...
        out.align(); // ...whose LEN/NLEN (00 00 ff ff) the receiver appends
        let keep = self.history.len().min(self.window);
        let drop = self.history.len() - keep;
        self.history.drain(..drop);
        self.base = self.base.wrapping_add(drop as u32);
        out.bytes
    }

    fn hash(&self, i: usize) -> Option<usize> {
        let d = &self.history;
        (i + MIN_MATCH <= d.len()).then(|| {
            let v = u32::from(d[i]) << 16 | u32::from(d[i + 1]) << 8 | u32::from(d[i + 2]);
            (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
        })
    }

    fn remember(&mut self, i: usize) {
        if let Some(h) = self.hash(i) {
            self.heads[h] = self.base.wrapping_add(i as u32).wrapping_add(1);
        }
    }

    /// The longest match for position `i` at the last place its 3 bytes were seen (greedy, one
    /// candidate): `(length, distance)`, length 0 when there is none.
    fn longest_match(&self, i: usize) -> (usize, usize) {
        let Some(h) = self.hash(i) else {
            return (0, 0);
        };
        let seen = self.heads[h];
        if seen == 0 {
            return (0, 0);
        }
        let here = self.base.wrapping_add(i as u32);
        let distance = here.wrapping_sub(seen.wrapping_sub(1)) as usize;
        if distance == 0 || distance > self.window || distance > i {
            return (0, 0); // stale (outside the window, or from a message not kept)
        }
        let d = &self.history;
        let from = i - distance;
        let limit = (d.len() - i).min(MAX_MATCH);
        let length = (0..limit)
            .position(|k| d[from + k] != d[i + k])
            .unwrap_or(limit);
        (length, distance)
    }
}

/// DEFLATE's bit stream: values least significant bit first, Huffman codes most significant
/// bit first.
struct Bits {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn with_capacity(capacity: usize) -> Self {
        Bits {
            bytes: Vec::with_capacity(capacity),
            acc: 0,
            n: 0,
        }
    }

    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code `code` of `bits` bits.
    fn code(&mut self, code: u32, bits: u32) {
        self.put(code.reverse_bits() >> (32 - bits), bits);
    }

    fn literal(&mut self, byte: u8) {
        let byte = u32::from(byte);
        if byte < 144 {
            self.code(0x30 + byte, 8);
        } else {
            self.code(0x190 + byte - 144, 9);
        }
    }

    fn length(&mut self, length: usize) {
        let index = LEN_BASE.partition_point(|&base| usize::from(base) <= length) - 1;
        let symbol = 257 + index as u32;
        if symbol < 280 {
            self.code(symbol - 256, 7);
        } else {
            self.code(0xC0 + symbol - 280, 8);
        }
        let extra = u32::from(LEN_EXTRA[index]);
        if extra > 0 {
            self.put((length - usize::from(LEN_BASE[index])) as u32, extra);
        }
    }

    fn distance(&mut self, distance: usize) {
        let index = DIST_BASE.partition_point(|&base| usize::from(base) <= distance) - 1;
        self.code(index as u32, 5);
        let extra = u32::from(DIST_EXTRA[index]);
        if extra > 0 {
            self.put((distance - usize::from(DIST_BASE[index])) as u32, extra);
        }
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{inflate, Lcg};
    use super::*;
    use flate2::Decompress;

    fn join(i: usize) -> String {
        format!(
            r#"{{"type":"joined","seq":{s},"session_id":"session-{i}","user":{{"user_id":"user-{i}","name":"User {i}","online":true,"away":false,"idle":false,"online_since":{s}}},"session":{{"session_id":"session-{i}","name":"User {i}","status":"active","joined_at":{t},"joined_seq":{s}}}}}"#,
            s = i + 1,
            t = 1_764_700_000_000u64 + 977 * i as u64
        )
    }

    #[test]
    fn every_message_inflates_to_itself_across_windows_and_modes() {
        let mut rng = Lcg(7);
        for window_bits in [9u8, 12, 15] {
            for takeover in [true, false] {
                let mut deflater = Deflater::new(window_bits, takeover);
                let mut decoder = Decompress::new(false);
                for n in 0..300 {
                    // Mixes repeats (join diffs), random bytes, runs, and sizes from 1 byte to
                    // several windows.
                    let message: Vec<u8> = match n % 4 {
                        0 => join(rng.below(5000) as usize).into_bytes(),
                        1 => (0..rng.below(3000)).map(|_| rng.below(256) as u8).collect(),
                        2 => vec![b'a' + (n % 26) as u8; 1 + rng.below(70_000) as usize],
                        _ => (0..1 + rng.below(600))
                            .map(|_| b"{}\":,ab01"[rng.below(9) as usize])
                            .collect(),
                    };
                    let payload = deflater.compress(&message);
                    assert_eq!(
                        inflate(&mut decoder, &payload),
                        message,
                        "message {n}, window 2^{window_bits}, takeover {takeover}"
                    );
                }
            }
        }
    }

    #[test]
    fn without_takeover_each_message_inflates_on_its_own() {
        let mut deflater = Deflater::new(12, false);
        for i in 0..50 {
            let message = join(i);
            let payload = deflater.compress(message.as_bytes());
            // A fresh decoder for each message: nothing may refer to an earlier one.
            assert_eq!(
                inflate(&mut Decompress::new(false), &payload),
                message.as_bytes()
            );
        }
    }

    #[test]
    fn join_diffs_shrink_several_times_with_the_window_kept() {
        let mut deflater = Deflater::new(12, true);
        let (mut raw, mut sent) = (0, 0);
        for i in 0..1000 {
            let message = join(i);
            raw += message.len();
            sent += deflater.compress(message.as_bytes()).len();
        }
        // Measured: 4.9x (57 bytes a diff). Without the window kept across messages: 1.6x.
        assert!(raw > 3 * sent, "raw {raw} bytes, sent {sent}");
        let mut alone = Deflater::new(12, false);
        let standalone: usize = (0..1000)
            .map(|i| alone.compress(join(i).as_bytes()).len())
            .sum();
        assert!(
            standalone > 2 * sent,
            "standalone {standalone}, kept {sent}"
        );
    }

    #[test]
    fn matches_never_reach_past_the_window() {
        // The same 600 bytes twice, 5000 bytes apart: a 4 KB window must not refer back to the
        // first copy (a 2^12 decoder would fail), a 2^13 one may.
        let mut rng = Lcg(3);
        let block: Vec<u8> = (0..600).map(|_| rng.below(256) as u8).collect();
        let filler: Vec<u8> = (0..5000).map(|_| rng.below(256) as u8).collect();
        let message = [block.clone(), filler, block].concat();
        let mut small = Deflater::new(12, true);
        let mut large = Deflater::new(13, true);
        let (s, l) = (small.compress(&message), large.compress(&message));
        assert!(l.len() + 400 < s.len(), "{} vs {}", l.len(), s.len());
        assert!(small.farthest <= 4096, "{}", small.farthest);
        assert!(large.farthest > 4096, "{}", large.farthest);
        // And across messages: the second copy in a later message.
        let mut small = Deflater::new(12, true);
        small.compress(&message[..5600]);
        small.compress(&message[5600..]);
        assert!(small.farthest <= 4096, "{}", small.farthest);
        for payload in [s, l] {
            assert_eq!(inflate(&mut Decompress::new(false), &payload), message);
        }
    }
}
