//! Writing a text message's frames straight from the shared message's bytes: a few header bytes
//! and the payload go out in one vectored write, so a subscriber copies nothing and keeps no
//! write buffer (tungstenite's keeps the size of the largest frame it ever wrote, for the
//! socket's life).

use std::io::{self, IoSlice};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The largest frame sent: a message bigger than this (a big room's snapshot) goes in several,
/// so a client never has to take one huge frame.
pub(crate) const FRAGMENT_BYTES: usize = 16 * 1024;

/// The most header bytes a frame of at most [`FRAGMENT_BYTES`] takes (unmasked, as a server
/// sends).
const HEADER_BYTES: usize = 4;

/// The header of one unmasked frame (RFC 6455 §5.2): FIN, RSV1 ("compressed", on the first
/// frame only), the opcode (text first, continuation after), the payload's length.
fn header(fin: bool, rsv1: bool, first: bool, len: usize) -> ([u8; HEADER_BYTES], usize) {
    debug_assert!(len <= FRAGMENT_BYTES);
    let mut out = [0u8; HEADER_BYTES];
    let opcode = if first { 0x1 } else { 0x0 };
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode;
    if len < 126 {
        out[1] = len as u8;
        (out, 2)
    } else {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (out, 4)
    }
}

/// Writes each `(payload, compressed)` as one text message in frames of at most
/// [`FRAGMENT_BYTES`], all of them in as few writes as the writer allows: one vectored write
/// for what piled up during a burst, headers and payloads together (a header alone in a segment
/// would wait on the peer's delayed ACK).
pub(crate) async fn write_messages<W, P>(io: &mut W, messages: &[(P, bool)]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    P: AsRef<[u8]>,
{
    // Each frame's header, and the part of its message it carries.
    let mut frames = Vec::new();
    for (payload, rsv1) in messages {
        let payload = payload.as_ref();
        let count = payload.len().div_ceil(FRAGMENT_BYTES).max(1);
        for i in 0..count {
            let end = ((i + 1) * FRAGMENT_BYTES).min(payload.len());
            let chunk = &payload[i * FRAGMENT_BYTES..end];
            frames.push((
                header(i + 1 == count, i == 0 && *rsv1, i == 0, chunk.len()),
                chunk,
            ));
        }
    }
    let mut slices = Vec::with_capacity(frames.len() * 2);
    for ((header, len), chunk) in &frames {
        slices.push(IoSlice::new(&header[..*len]));
        if !chunk.is_empty() {
            slices.push(IoSlice::new(chunk));
        }
    }
    if !io.is_write_vectored() {
        let all: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        io.write_all(&all).await?;
        return io.flush().await;
    }
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    /// Frames read back with tungstenite's own parser: (header, payload) each.
    fn parse(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = std::io::Cursor::new(bytes);
            let (header, len) = FrameHeader::parse(&mut cursor)
                .expect("a valid header")
                .expect("a whole header");
            let start = cursor.position() as usize;
            let end = start + len as usize;
            frames.push((header, bytes[start..end].to_vec()));
            bytes = &bytes[end..];
        }
        frames
    }

    /// A writer that takes at most `step` bytes a call, vectored or not, and notes each call's
    /// size.
    struct Trickle {
        out: Vec<u8>,
        writes: Vec<usize>,
        step: usize,
        vectored: bool,
    }

    impl Trickle {
        fn new(step: usize, vectored: bool) -> Self {
            Trickle {
                out: Vec::new(),
                writes: Vec::new(),
                step,
                vectored,
            }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            self.writes.push(n);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.step;
            for buf in bufs {
                let n = buf.len().min(left);
                self.out.extend_from_slice(&buf[..n]);
                left -= n;
            }
            let n = self.step - left;
            self.writes.push(n);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_message_goes_in_frames_of_at_most_16_kb_that_tungstenite_reads_back() {
        let sizes = [
            (0, 1),
            (1, 1),
            (125, 1),
            (126, 1),
            (16_384, 1),
            (16_385, 2),
            (50_000, 4),
        ];
        for (len, count) in sizes {
            for (step, vectored) in [(usize::MAX, true), (3, true), (1, false), (7, false)] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut io = Trickle::new(step, vectored);
                write_messages(&mut io, &[(&payload, true)]).await.unwrap();
                let frames = parse(&io.out);
                assert_eq!(frames.len(), count, "{len} bytes");
                let mut joined = Vec::new();
                for (i, (header, bytes)) in frames.iter().enumerate() {
                    let opcode = if i == 0 { Data::Text } else { Data::Continue };
                    assert_eq!(header.opcode, OpCode::Data(opcode));
                    assert_eq!(header.is_final, i + 1 == count);
                    assert_eq!(header.rsv1, i == 0);
                    assert!(!header.rsv2 && !header.rsv3 && header.mask.is_none());
                    assert!(bytes.len() <= FRAGMENT_BYTES);
                    joined.extend_from_slice(bytes);
                }
                assert_eq!(joined, payload, "{len} bytes, {step} a write");
            }
        }
        let mut out = Vec::new();
        write_messages(&mut out, &[(b"abc", false)]).await.unwrap();
        let frames = parse(&out);
        assert!(!frames[0].0.rsv1);
        assert_eq!(frames[0].1, b"abc");
    }

    #[tokio::test]
    async fn messages_that_piled_up_go_in_one_write_each_in_its_frames() {
        let big: Vec<u8> = (0..20_000).map(|i| (i % 241) as u8).collect();
        let messages: [(&[u8], bool); 3] = [(&[7; 300], false), (&big, true), (b"x", true)];
        for vectored in [true, false] {
            let mut io = Trickle::new(usize::MAX, vectored);
            write_messages(&mut io, &messages).await.unwrap();
            assert_eq!(io.writes, vec![4 + 300 + 4 + 16_384 + 4 + 3_616 + 2 + 1]);
            let frames = parse(&io.out);
            let shape: Vec<_> = frames
                .iter()
                .map(|(h, b)| (h.opcode, h.is_final, h.rsv1, b.len()))
                .collect();
            let (text, more) = (OpCode::Data(Data::Text), OpCode::Data(Data::Continue));
            assert_eq!(
                shape,
                vec![
                    (text, true, false, 300),
                    (text, false, true, 16_384),
                    (more, true, false, 3_616),
                    (text, true, true, 1),
                ]
            );
            assert_eq!([&frames[1].1[..], &frames[2].1[..]].concat(), big);
        }
        // A writer that takes a few bytes at a time still gets every byte, in order.
        let mut io = Trickle::new(5, true);
        write_messages(&mut io, &messages).await.unwrap();
        assert_eq!(parse(&io.out).len(), 4);
    }
}
