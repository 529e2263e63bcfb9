//! What the tests of this module share: a browser's inflater, and a seeded generator.

use flate2::{Decompress, FlushDecompress};

/// What a browser does with each compressed message: append `00 00 ff ff` and inflate, keeping
/// its window from message to message.
pub(super) fn inflate(decoder: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::new();
    let before = decoder.total_in();
    loop {
        out.reserve(64 * 1024);
        let consumed = (decoder.total_in() - before) as usize;
        decoder
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("valid deflate");
        let consumed = (decoder.total_in() - before) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// A deterministic generator, so a failure reproduces.
pub(super) struct Lcg(pub(super) u64);

impl Lcg {
    /// The next number below `n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}
