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

/// Writes `payload` as one text message (compressed if `rsv1`) in frames of at most
/// [`FRAGMENT_BYTES`], each header and its payload in one write where the writer takes
/// vectored writes (a header alone in a segment would wait on the peer's delayed ACK).
pub(crate) async fn write_message<W>(io: &mut W, payload: &[u8], rsv1: bool) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let count = payload.len().div_ceil(FRAGMENT_BYTES).max(1);
    for i in 0..count {
        let chunk = &payload[i * FRAGMENT_BYTES..((i + 1) * FRAGMENT_BYTES).min(payload.len())];
        let (header, len) = header(i + 1 == count, i == 0 && rsv1, i == 0, chunk.len());
        write_both(io, &header[..len], chunk).await?;
    }
    io.flush().await
}

/// Writes `a` then `b`, as few writes as the writer allows.
async fn write_both<W>(io: &mut W, mut a: &[u8], mut b: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if !io.is_write_vectored() {
        let mut both = Vec::with_capacity(a.len() + b.len());
        both.extend_from_slice(a);
        both.extend_from_slice(b);
        return io.write_all(&both).await;
    }
    while !a.is_empty() || !b.is_empty() {
        let n = if a.is_empty() {
            io.write(b).await?
        } else {
            io.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    Ok(())
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
                write_message(&mut io, &payload, true).await.unwrap();
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
        write_message(&mut out, b"abc", false).await.unwrap();
        let frames = parse(&out);
        assert!(!frames[0].0.rsv1);
        assert_eq!(frames[0].1, b"abc");
    }

    #[tokio::test]
    async fn a_header_and_its_payload_go_in_one_write() {
        for vectored in [true, false] {
            let mut io = Trickle::new(usize::MAX, vectored);
            write_message(&mut io, &[7; 300], false).await.unwrap();
            assert_eq!(io.writes, vec![304], "vectored: {vectored}");
        }
    }
}
