//! The subscription's WebSocket: the HTTP/1.1 upgrade, and text frames compressed with
//! `permessage-deflate` (RFC 7692) when the client offers it, as browsers and Node's `ws` do.
//!
//! axum's own upgrade cannot send compressed frames, so this one does the handshake itself
//! (the same checks as axum's) and drives tungstenite directly. A change is compressed once for
//! all the room's subscribers on this server ([`stream`]), and a subscriber keeps no compressor
//! of its own ([`frames`]).

mod deflate;
mod frames;
mod negotiate;
mod stream;
#[cfg(test)]
mod test_support;

pub(crate) use stream::Streams;

use axum::body::Body;
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode, Version};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use presence_core::server::SharedMessage;
use presence_core::PresenceError;
use std::future::Future;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message};
use tokio_tungstenite::WebSocketStream;

use frames::Frames;
use negotiate::{negotiate, Agreed};

/// The largest frame sent. A socket's write buffer keeps the size of the largest frame it
/// wrote, so a room's big snapshot in one frame would stay allocated for as long as the socket
/// lives; in frames of this size, a socket never holds more.
pub(crate) const FRAGMENT_BYTES: usize = 16 * 1024;

/// One text message's frames: the first says "text" (and, with `rsv1`, "compressed"), the
/// others continue it; the last is final.
fn fragments(payload: Vec<u8>, rsv1: bool) -> Vec<Frame> {
    let payload = Bytes::from(payload);
    let count = payload.len().div_ceil(FRAGMENT_BYTES).max(1);
    (0..count)
        .map(|i| {
            let end = ((i + 1) * FRAGMENT_BYTES).min(payload.len());
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            let chunk = payload.slice(i * FRAGMENT_BYTES..end);
            let mut frame = Frame::message(chunk, OpCode::Data(opcode), i + 1 == count);
            frame.header_mut().rsv1 = i == 0 && rsv1;
            frame
        })
        .collect()
}

/// A checked WebSocket upgrade request, not yet answered.
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    deflate: Option<Agreed>,
}

impl Upgrade {
    /// Checks an HTTP/1.1 WebSocket handshake (RFC 6455 §4.2.1) and takes the connection's
    /// upgrade from `parts`; a request that is not one gets a typed 400.
    pub(crate) fn from_parts(parts: &mut Parts) -> Result<Self, PresenceError> {
        let bad = |what: &str| PresenceError::BadRequest {
            message: format!("expected a WebSocket upgrade: {what}"),
        };
        if parts.method != Method::GET {
            return Err(bad("the method must be GET"));
        }
        if parts.version != Version::HTTP_11 {
            return Err(bad("the request must be HTTP/1.1"));
        }
        let has = |name: header::HeaderName, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value.to_str().is_ok_and(|value| {
                    value
                        .split(',')
                        .any(|item| item.trim().eq_ignore_ascii_case(token))
                })
            })
        };
        if !has(header::CONNECTION, "upgrade") {
            return Err(bad("`Connection` header did not include `upgrade`"));
        }
        if !has(header::UPGRADE, "websocket") {
            return Err(bad("`Upgrade` header did not include `websocket`"));
        }
        if !has(header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(bad("`Sec-WebSocket-Version` header did not include `13`"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| bad("`Sec-WebSocket-Key` header missing"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| bad("the connection cannot be upgraded"))?;
        let deflate = negotiate(
            parts
                .headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        );
        Ok(Upgrade {
            key,
            on_upgrade,
            deflate,
        })
    }

    /// Answers `101 Switching Protocols` and runs `callback` on the socket once the client has
    /// it; compressed messages of `room` go through its stream in `streams`.
    pub(crate) fn on_upgrade<C, F>(
        self,
        config: WebSocketConfig,
        streams: &Streams,
        room: &str,
        callback: C,
    ) -> Response
    where
        C: FnOnce(Socket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(self.key.as_bytes()),
            );
        if let Some(agreed) = &self.deflate {
            response = response.header(header::SEC_WEBSOCKET_EXTENSIONS, agreed.header());
        }
        let frames = self
            .deflate
            .map(|agreed| Frames::new(agreed, streams.of(room)));
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return; // the client went away before the switch
            };
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            callback(Socket { stream, frames }).await;
        });
        response
            .body(Body::empty())
            .expect("a 101 of valid headers")
    }
}

/// A server's end of the subscription socket.
pub(crate) struct Socket {
    stream: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    /// How messages are compressed, if that was agreed.
    frames: Option<Frames>,
}

impl Socket {
    /// Sends one message as text, compressed if that was agreed and worth it, in frames of at
    /// most [`FRAGMENT_BYTES`].
    pub(crate) async fn send(&mut self, message: &Arc<SharedMessage>) -> Result<(), Error> {
        let compressed = self.frames.as_mut().and_then(|f| f.payload(message));
        let (payload, rsv1) = match compressed {
            Some(payload) => (Vec::from(payload), true),
            None => (message.json().as_bytes().to_vec(), false),
        };
        for frame in fragments(payload, rsv1) {
            self.stream.send(Message::Frame(frame)).await?;
        }
        Ok(())
    }

    /// Sends a ping.
    pub(crate) async fn ping(&mut self) -> Result<(), Error> {
        self.stream.send(Message::Ping(Default::default())).await
    }

    /// The next message from the client (`None` once the socket is closed).
    pub(crate) async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.stream.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_in_frames_of_at_most_16_kb_and_only_the_first_says_compressed() {
        for (len, count) in [(0, 1), (1, 1), (16_384, 1), (16_385, 2), (50_000, 4)] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frames = fragments(payload.clone(), true);
            assert_eq!(frames.len(), count, "{len} bytes");
            let mut joined = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let header = frame.header();
                let opcode = if i == 0 { Data::Text } else { Data::Continue };
                assert_eq!(header.opcode, OpCode::Data(opcode));
                assert_eq!(header.is_final, i + 1 == count);
                assert_eq!(header.rsv1, i == 0);
                assert!(frame.payload().len() <= FRAGMENT_BYTES);
                joined.extend_from_slice(frame.payload());
            }
            assert_eq!(joined, payload);
        }
        assert!(!fragments(vec![1, 2, 3], false)[0].header().rsv1);
    }
}
