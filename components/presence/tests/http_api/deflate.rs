//! The subscription socket compresses its frames (permessage-deflate, RFC 7692) for a client
//! that offers it, as browsers do: read here with a hand-rolled client that inflates like one.

use super::{app, join, serve, url_encode};
use flate2::{Decompress, FlushDecompress};
use leptos_presence::ssr::{Presence, PresenceConfig};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket client that offers `extensions` and inflates what comes compressed.
struct Client {
    tcp: TcpStream,
    /// The `Sec-WebSocket-Extensions` the server answered, if any.
    agreed: Option<String>,
    inflater: Decompress,
    /// Bytes of message payloads as they came on the wire.
    wire_bytes: usize,
    /// The largest frame payload so far.
    largest_frame: usize,
}

/// One text message: whether it came compressed, and its JSON.
struct Received {
    compressed: bool,
    /// How many frames it came in.
    frames: usize,
    json: Value,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, room_token: &str, extensions: &str) -> Client {
        Client::connect_with(addr, room_token, "", extensions).await
    }

    /// [`Client::connect`] with more of the query (`&view=summary`).
    async fn connect_with(
        addr: std::net::SocketAddr,
        room_token: &str,
        query: &str,
        extensions: &str,
    ) -> Client {
        let token: String = url_encode(room_token);
        Client::open(addr, &format!("room_token={token}{query}"), extensions).await
    }

    /// A socket to `subscribe?{query}`.
    async fn open(addr: std::net::SocketAddr, query: &str, extensions: &str) -> Client {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "GET /api/presence/subscribe?{query} HTTP/1.1\r\nHost: {addr}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        if !extensions.is_empty() {
            request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // The key of RFC 6455's own example, and its answer.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        let agreed = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        Client {
            tcp,
            agreed,
            inflater: Decompress::new(false),
            wire_bytes: 0,
            largest_frame: 0,
        }
    }

    /// Sends `text` as a browser does: masked, and compressed (a fresh context each time: the
    /// server reads only a first message) if `compressed`.
    async fn send_text(&mut self, text: &str, compressed: bool) {
        let payload = if compressed {
            let mut deflater = flate2::Compress::new(flate2::Compression::default(), false);
            let mut out = Vec::with_capacity(text.len() + 64);
            deflater
                .compress_vec(text.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4); // RFC 7692: without the final 00 00 ff ff
            out
        } else {
            text.as_bytes().to_vec()
        };
        let mask = [7u8, 1, 2, 9];
        let mut frame = vec![0x81 | if compressed { 0x40 } else { 0 }];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// One frame: whether it ends its message, its opcode, its RSV1 bit and its payload.
    async fn frame(&mut self) -> (bool, u8, bool, Vec<u8>) {
        let first = self.tcp.read_u8().await.unwrap();
        let second = self.tcp.read_u8().await.unwrap();
        assert_eq!(second & 0x80, 0, "server frames are not masked");
        let length = match second & 0x7f {
            126 => u64::from(self.tcp.read_u16().await.unwrap()),
            127 => self.tcp.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0; length as usize];
        self.tcp.read_exact(&mut payload).await.unwrap();
        (first & 0x80 != 0, first & 0x0f, first & 0x40 != 0, payload)
    }

    /// The next text message (pings skipped, fragments joined), within 5 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), async {
            let (mut message, mut compressed, mut frames) = (Vec::new(), false, 0);
            loop {
                let (fin, opcode, rsv1, payload) = self.frame().await;
                if opcode >= 8 {
                    assert!(!rsv1, "control frames are never compressed");
                    continue;
                }
                if frames == 0 {
                    assert_eq!(opcode, 1, "a message starts with a text frame");
                    compressed = rsv1;
                } else {
                    assert_eq!(opcode, 0, "then continues");
                    assert!(!rsv1, "only a message's first frame says it is compressed");
                }
                frames += 1;
                self.largest_frame = self.largest_frame.max(payload.len());
                self.wire_bytes += payload.len();
                message.extend_from_slice(&payload);
                if fin {
                    break;
                }
            }
            let text = if compressed {
                inflate(&mut self.inflater, &message)
            } else {
                message
            };
            Received {
                compressed,
                frames,
                json: serde_json::from_slice(&text).unwrap(),
            }
        })
        .await
        .expect("a message within 5 s")
    }
}

fn inflate(inflater: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::new();
    let before = inflater.total_in();
    loop {
        out.reserve(64 * 1024);
        let consumed = (inflater.total_in() - before) as usize;
        inflater
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("a valid deflate stream");
        if (inflater.total_in() - before) as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

#[tokio::test]
async fn a_client_that_offers_deflate_gets_every_message_compressed_and_intact() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let token = presence.room_token("r1").unwrap();
    // What Chromium offers.
    let mut client =
        Client::connect(addr, &token, "permessage-deflate; client_max_window_bits").await;
    assert_eq!(client.agreed.as_deref(), Some("permessage-deflate"));
    let snapshot = client.next().await;
    assert!(snapshot.compressed);
    assert_eq!(snapshot.json["type"], "snapshot");

    let (mut raw, before) = (0, client.wire_bytes);
    for i in 0..40 {
        join(&app, "r1", &format!("user-{i}"), &format!("tab-{i}")).await;
        let event = client.next().await;
        assert!(event.compressed);
        assert_eq!(event.json["type"], "joined");
        assert_eq!(event.json["seq"], i + 1);
        assert_eq!(event.json["user"]["user_id"], format!("user-{i}"));
        raw += event.json.to_string().len();
    }
    // The window kept from message to message is what pays: join diffs are mostly repeats.
    let sent = client.wire_bytes - before;
    assert!(sent * 3 < raw, "sent {sent} bytes for {raw} of JSON");

    // After the compressor let its window go (idle), messages still inflate in the same stream.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    join(&app, "r1", "late", "tab-late").await;
    let event = client.next().await;
    assert!(event.compressed);
    assert_eq!(event.json["user"]["user_id"], "late");

    // A newcomer's snapshot of 41 users comes compressed too.
    let mut newcomer = Client::connect(addr, &token, "permessage-deflate").await;
    let snapshot = newcomer.next().await;
    assert_eq!(snapshot.json["users"].as_array().unwrap().len(), 41);
    assert!(newcomer.wire_bytes * 4 < snapshot.json.to_string().len());
}

#[tokio::test]
async fn a_client_that_asks_for_no_context_takeover_can_inflate_each_message_alone() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let token = presence.room_token("r1").unwrap();
    let mut client = Client::connect(
        addr,
        &token,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
    )
    .await;
    assert_eq!(
        client.agreed.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9")
    );
    client.next().await;
    for i in 0..10 {
        join(&app, "r1", &format!("user-{i}"), &format!("tab-{i}")).await;
        client.inflater = Decompress::new(false); // nothing of earlier messages
        let event = client.next().await;
        assert!(event.compressed);
        assert_eq!(event.json["seq"], i + 1);
    }
}

#[tokio::test]
async fn without_an_offer_or_with_a_bad_one_frames_are_plain() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let token = presence.room_token("r1").unwrap();
    for offer in [
        "",
        "permessage-deflate; server_max_window_bits=20",
        "x-webkit-deflate-frame",
    ] {
        let mut client = Client::connect(addr, &token, offer).await;
        assert_eq!(client.agreed, None, "{offer}");
        let snapshot = client.next().await;
        assert!(!snapshot.compressed, "{offer}");
        assert_eq!(snapshot.json["type"], "snapshot");
    }
}

#[tokio::test]
async fn a_big_snapshot_comes_in_frames_of_at_most_16_kb_compressed_or_not() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    for i in 0..1500 {
        join(&app, "r1", &format!("user-{i}"), &format!("tab-{i}")).await;
    }
    let token = presence.room_token("r1").unwrap();
    for offer in ["", "permessage-deflate"] {
        let mut client = Client::connect(addr, &token, offer).await;
        let snapshot = client.next().await;
        assert_eq!(snapshot.json["users"].as_array().unwrap().len(), 1500);
        assert_eq!(snapshot.compressed, !offer.is_empty());
        // ~330 KB plain, ~30 KB compressed.
        assert!(
            snapshot.frames >= 2,
            "{offer:?}: {} frames",
            snapshot.frames
        );
        assert!(
            client.largest_frame <= 16 * 1024,
            "{offer:?}: {}",
            client.largest_frame
        );
    }
}

#[tokio::test]
async fn summaries_go_as_plain_text_even_when_deflate_was_agreed() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    join(&app, "r1", "ann", "tab-1").await;
    let token = presence.room_token("r1").unwrap();
    let mut client =
        Client::connect_with(addr, &token, "&view=summary&me=ann", "permessage-deflate").await;
    assert_eq!(client.agreed.as_deref(), Some("permessage-deflate"));
    let summary = client.next().await;
    assert_eq!(summary.json["type"], "summary");
    assert!(!summary.compressed);
    let me = client.next().await;
    assert_eq!(me.json["type"], "me");
    assert!(!me.compressed);
}

#[tokio::test]
async fn a_browsers_compressed_heartbeat_joins_a_socket_whose_room_then_comes_compressed() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    join(&app, "r1", "bob", "tab-b").await;
    for compressed in [true, false] {
        let user = if compressed { "ann" } else { "cy" };
        let mut client =
            Client::open(addr, "join=1", "permessage-deflate; client_max_window_bits").await;
        assert_eq!(client.agreed.as_deref(), Some("permessage-deflate"));
        let heartbeat = serde_json::json!({"room": "r1", "user": user, "session": user,
            "name": "A", "state": {"note": "x".repeat(300)}});
        client.send_text(&heartbeat.to_string(), compressed).await;
        let answer = client.next().await;
        assert!(!answer.compressed, "the answer is the socket's own, plain");
        assert_eq!(answer.json["type"], "heartbeat", "{}", answer.json);
        assert_eq!(answer.json["answer"]["user_id"], user);
        let snapshot = client.next().await;
        assert!(snapshot.compressed);
        assert_eq!(snapshot.json["type"], "snapshot");
        let users = snapshot.json["users"].as_array().unwrap();
        let me = users.iter().find(|u| u["user_id"] == user).unwrap();
        assert_eq!(me["sessions"][0]["state"]["note"], "x".repeat(300));
    }
}

#[tokio::test]
async fn a_compressed_first_message_without_agreeing_to_compression_is_refused_typed() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let mut client = Client::open(addr, "join=1", "").await;
    assert_eq!(client.agreed, None);
    let heartbeat = r#"{"room":"r1","user":"ann","session":"s","name":"A"}"#;
    client.send_text(heartbeat, true).await;
    let refusal = client.next().await;
    assert_eq!(refusal.json["type"], "error");
    assert_eq!(refusal.json["error"]["code"], "bad_request");
    assert!(refusal.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("compression was not agreed"));
    let token = presence.room_token("r1").unwrap();
    let listed = serde_json::to_value(presence.list(&token).await.unwrap()).unwrap();
    assert_eq!(listed["users"], serde_json::json!([]));
}
