//! The subscription's WebSocket: the HTTP/1.1 upgrade, and text frames compressed with
//! `permessage-deflate` (RFC 7692) when the client offers it, as browsers and Node's `ws` do.
//!
//! axum's own upgrade cannot send compressed frames, so this one does the handshake itself
//! (the same checks as axum's). tungstenite reads the client's frames and sends pings; messages
//! are written straight from the shared message's bytes ([`write`]), so a subscriber copies
//! nothing and keeps no write buffer. A change is compressed once for all the room's subscribers
//! on this server ([`stream`]), and a subscriber keeps no compressor of its own ([`frames`]).

mod deflate;
mod frames;
mod negotiate;
mod stream;
#[cfg(test)]
mod test_support;
mod write;

pub(crate) use stream::Streams;

use axum::body::Body;
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode, Version};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use presence_core::server::SharedMessage;
use presence_core::PresenceError;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use frames::Frames;
use negotiate::{negotiate, Agreed};

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
    /// Sends messages as text, each compressed if that was agreed and worth it, in frames of at
    /// most [`write::FRAGMENT_BYTES`], written straight from the shared messages' bytes in one
    /// write.
    pub(crate) async fn send(&mut self, messages: &[Arc<SharedMessage>]) -> Result<(), Error> {
        let payloads: Vec<(Cow<'_, [u8]>, bool)> = messages
            .iter()
            .map(
                |message| match self.frames.as_mut().and_then(|f| f.payload(message)) {
                    Some(compressed) => (compressed, true),
                    None => (Cow::Borrowed(message.json().as_bytes()), false),
                },
            )
            .collect();
        // What tungstenite still holds (a pong it owes) goes out first: frames never interleave.
        self.stream.flush().await?;
        write::write_messages(self.stream.get_mut(), &payloads).await?;
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
