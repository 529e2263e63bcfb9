//! Reading a client's first message before tungstenite takes the socket. A socket that joins
//! (`subscribe?join=1`) starts with the client's heartbeat, and a browser that agreed to
//! `permessage-deflate` compresses what it sends (RFC 7692), which tungstenite does not read.
//! A connection's first message starts a fresh compression context, so it inflates on its own
//! whatever else was agreed. Control frames, which are never compressed, are read by tungstenite
//! afterwards as before.

use flate2::{Decompress, FlushDecompress};
use presence_core::PresenceError;
use tokio::io::{AsyncRead, AsyncReadExt};

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn bad(message: impl Into<String>) -> PresenceError {
    PresenceError::BadRequest {
        message: message.into(),
    }
}

/// The client's first data message as text, read frame by frame from `io` (nothing past it):
/// at most `max` bytes on the wire and once inflated; compressed only if `compressed_allowed`
/// (`permessage-deflate` was agreed). Pings and pongs before it are skipped. `Ok(None)`: the
/// client closed (or went) first. A binary message, a bad frame or one too big is a
/// `bad_request` that says so.
pub(crate) async fn read_first_message<R: AsyncRead + Unpin>(
    io: &mut R,
    max: usize,
    compressed_allowed: bool,
) -> Result<Option<String>, PresenceError> {
    let mut payload = Vec::new();
    let mut compressed = None;
    loop {
        let mut head = [0u8; 2];
        if io.read_exact(&mut head).await.is_err() {
            return Ok(None);
        }
        let (fin, rsv1, opcode) = (head[0] & 0x80 != 0, head[0] & 0x40 != 0, head[0] & 0x0F);
        if head[0] & 0x30 != 0 {
            return Err(bad("a frame with RSV2 or RSV3 set"));
        }
        if head[1] & 0x80 == 0 {
            return Err(bad("a client's frame must be masked"));
        }
        let len = match head[1] & 0x7F {
            126 => {
                let mut bytes = [0u8; 2];
                read(io, &mut bytes).await?;
                u16::from_be_bytes(bytes) as u64
            }
            127 => {
                let mut bytes = [0u8; 8];
                read(io, &mut bytes).await?;
                u64::from_be_bytes(bytes)
            }
            short => short as u64,
        };
        // (A length with its top bit set is not allowed, and is over any `max` here.)
        if len > (max - payload.len()) as u64 {
            return Err(bad(format!("the first message is over {max} bytes")));
        }
        let mut mask = [0u8; 4];
        read(io, &mut mask).await?;
        let start = payload.len();
        payload.resize(start + len as usize, 0);
        read(io, &mut payload[start..]).await?;
        for (i, byte) in payload[start..].iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        match (opcode, compressed) {
            (PING | PONG, _) if fin && len <= 125 && !rsv1 => {
                payload.truncate(start);
                continue;
            }
            (CLOSE, _) => return Ok(None),
            (TEXT, None) => compressed = Some(rsv1),
            (CONTINUATION, Some(_)) if !rsv1 => {}
            (TEXT, Some(_)) | (CONTINUATION, _) => {
                return Err(bad("a continuation frame out of place"))
            }
            _ => return Err(bad("the first message must be text")),
        }
        if fin {
            break;
        }
    }
    let bytes = match compressed {
        Some(true) if compressed_allowed => inflate(&payload, max)?,
        Some(true) => return Err(bad("a compressed frame, but compression was not agreed")),
        _ => payload,
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| bad("the first message is not UTF-8"))
}

async fn read<R: AsyncRead + Unpin>(io: &mut R, buf: &mut [u8]) -> Result<(), PresenceError> {
    io.read_exact(buf)
        .await
        .map(drop)
        .map_err(|_| bad("the connection ended inside a frame"))
}

/// A message compressed as RFC 7692 says (raw deflate, its final `00 00 ff ff` left off; it
/// may also end in a final block), at most `max` bytes once inflated.
fn inflate(payload: &[u8], max: usize) -> Result<Vec<u8>, PresenceError> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut decoder = Decompress::new(false);
    let too_big = || bad(format!("the first message is over {max} bytes inflated"));
    let mut out = Vec::with_capacity(max.min(4 * payload.len() + 64) + 1);
    loop {
        let (read, written) = (decoder.total_in(), out.len());
        let consumed = read as usize;
        let status = decoder
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .map_err(|e| bad(format!("the first message does not inflate: {e}")))?;
        if out.len() > max {
            return Err(too_big());
        }
        // Done: a final block ended the stream (what follows it is ignored), or all of the
        // input is in with room to spare (nothing more is pending).
        let all_in = decoder.total_in() as usize == input.len();
        if status == flate2::Status::StreamEnd || (all_in && out.len() < out.capacity()) {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            // Room for one byte more than `max`, so that going over it shows.
            out.reserve(
                (2 * out.capacity())
                    .min(max + 1)
                    .saturating_sub(out.len())
                    .max(1),
            );
        } else if decoder.total_in() == read && out.len() == written {
            return Err(bad("the first message does not inflate: no progress"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use tokio::io::AsyncWriteExt;

    /// A client's frame: masked, with `first_byte` (FIN, RSV1, opcode) as given.
    fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first_byte];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// What a browser sends for `text` once `permessage-deflate` is agreed.
    fn compressed(text: &str) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(text.len() + 64);
        c.compress_vec(text.as_bytes(), &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    async fn first(
        bytes: Vec<u8>,
        max: usize,
        compressed_allowed: bool,
    ) -> Result<Option<String>, PresenceError> {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client.write_all(&bytes).await.unwrap();
        drop(client);
        read_first_message(&mut server, max, compressed_allowed).await
    }

    fn message(result: Result<Option<String>, PresenceError>) -> String {
        match result {
            Err(PresenceError::BadRequest { message }) => message,
            other => panic!("expected a bad_request, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_compressed_fragmented_and_after_a_ping_it_reads_the_same_text() {
        let text =
            r#"{"room":"r1","user":"ann","session":"s","name":"Ann","state":{"doing":"reading"}}"#;
        let plain = frame(0x81, text.as_bytes());
        assert_eq!(
            first(plain.clone(), 16_384, false).await.unwrap().unwrap(),
            text
        );
        let deflated = frame(0xC1, &compressed(text));
        assert_eq!(first(deflated, 16_384, true).await.unwrap().unwrap(), text);
        let (a, b) = text.as_bytes().split_at(10);
        let fragmented = [frame(0x01, a), frame(0x80, b)].concat();
        assert_eq!(
            first(fragmented, 16_384, false).await.unwrap().unwrap(),
            text
        );
        let ping_first = [frame(0x89, b"hi"), plain].concat();
        assert_eq!(
            first(ping_first, 16_384, false).await.unwrap().unwrap(),
            text
        );
        // Long enough for a 16-bit length, compressed.
        let long = format!(r#"{{"state":"{}"}}"#, "ab".repeat(5_000));
        let deflated = frame(0xC1, &compressed(&long));
        assert_eq!(first(deflated, 16_384, true).await.unwrap().unwrap(), long);
        let plain = frame(0x81, long.as_bytes());
        assert_eq!(first(plain, 16_384, true).await.unwrap().unwrap(), long);
    }

    #[tokio::test]
    async fn a_message_that_ends_in_a_final_block_reads_and_so_does_one_of_exactly_max_bytes() {
        // A final block (BFINAL): RFC 7692 allows it; the decoder then takes nothing more.
        let mut c = Compress::new(Compression::default(), false);
        let mut finished = Vec::with_capacity(256);
        c.compress_vec(b"hello", &mut finished, FlushCompress::Finish)
            .unwrap();
        let read = first(frame(0xC1, &finished), 100, true).await;
        assert_eq!(read.unwrap().as_deref(), Some("hello"));
        // The smallest: an empty final block.
        let read = first(frame(0xC1, &[0x03, 0x00]), 100, true).await;
        assert_eq!(read.unwrap().as_deref(), Some(""));
        let exact = "y".repeat(100);
        let read = first(frame(0xC1, &compressed(&exact)), 100, true).await;
        assert_eq!(read.unwrap(), Some(exact));
    }

    #[tokio::test]
    async fn a_length_that_would_overflow_is_refused_not_a_panic() {
        let mut frames = frame(0x01, b"{");
        // A continuation claiming 2^64 - 1 bytes.
        frames.extend_from_slice(&[0x80, 0x80 | 127]);
        frames.extend_from_slice(&u64::MAX.to_be_bytes());
        frames.extend_from_slice(&[0, 0, 0, 0]);
        assert!(message(first(frames, 16_384, false).await).contains("over 16384 bytes"));
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(message(first(huge, 16_384, false).await).contains("over 16384 bytes"));
    }

    #[tokio::test]
    async fn it_reads_nothing_past_the_first_message() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let after = frame(0x8A, b"pong");
        client
            .write_all(&[frame(0x81, b"first"), after.clone()].concat())
            .await
            .unwrap();
        drop(client);
        let text = read_first_message(&mut server, 100, false).await.unwrap();
        assert_eq!(text.as_deref(), Some("first"));
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, after);
    }

    #[tokio::test]
    async fn a_close_or_a_hang_up_first_is_no_message() {
        assert_eq!(
            first(frame(0x88, &[0x03, 0xE8]), 100, false).await.unwrap(),
            None
        );
        assert_eq!(first(Vec::new(), 100, false).await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_frames_are_typed_errors_that_say_what_was_wrong() {
        let text = "x".repeat(200);
        assert!(
            message(first(frame(0x81, text.as_bytes()), 100, false).await)
                .contains("over 100 bytes")
        );
        // A small compressed message that inflates past the limit: a deflate bomb.
        let bomb = frame(0xC1, &compressed(&"0".repeat(100_000)));
        assert!(message(first(bomb, 16_384, true).await).contains("over 16384 bytes inflated"));
        assert!(
            message(first(frame(0xC1, &compressed("hi")), 100, false).await).contains("not agreed")
        );
        assert!(
            message(first(frame(0xC1, b"not deflate at all"), 100, true).await).contains("inflate")
        );
        assert!(message(first(frame(0x82, b"{}"), 100, false).await).contains("must be text"));
        assert!(message(first(frame(0x80, b"{}"), 100, false).await).contains("continuation"));
        assert!(message(first(frame(0x81, &[0xff, 0xfe]), 100, false).await).contains("UTF-8"));
        assert!(message(first(frame(0xA1, b"{}"), 100, false).await).contains("RSV2"));
        // A control frame is never compressed.
        let ping = [frame(0xC9, b"hi"), frame(0x81, b"{}")].concat();
        assert!(message(first(ping, 100, true).await).contains("must be text"));
        let mut unmasked = frame(0x81, b"{}");
        unmasked[1] &= 0x7F;
        assert!(message(first(unmasked, 100, false).await).contains("masked"));
        let mut cut = frame(0x81, b"{\"room\":1}");
        cut.truncate(cut.len() - 3);
        assert!(message(first(cut, 100, false).await).contains("ended inside a frame"));
    }
}
