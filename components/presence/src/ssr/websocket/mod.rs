//! The subscription's WebSocket: the HTTP/1.1 upgrade, and text frames compressed with
//! `permessage-deflate` (RFC 7692) when the client offers it, as browsers and Node's `ws` do.
//!
//! axum's own upgrade cannot send compressed frames, so this one does the handshake itself
//! (the same checks as axum's). tungstenite reads the client's frames and sends pings; messages
//! are written straight from the shared message's bytes ([`write`]), so a subscriber copies
//! nothing and keeps no write buffer. A change is compressed once for all the room's subscribers
//! on this server ([`stream`]), and a subscriber keeps no compressor of its own ([`frames`]).

mod deflate;
mod first_message;
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
    /// it; once the socket [follows](Socket::follow) a room, its compressed messages go through
    /// that room's stream in `streams`. With `first`, the client's first message (at most
    /// `first.max_bytes`, within `first.within`) is read before, for [`Socket::first_message`].
    pub(crate) fn on_upgrade<C, F>(
        self,
        config: WebSocketConfig,
        streams: &Streams,
        first: Option<FirstMessage>,
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
        let (deflate, streams) = (self.deflate, streams.clone());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return; // the client went away before the switch
            };
            let mut io = TokioIo::new(upgraded);
            let first = match first {
                Some(first) => {
                    let read = first_message::read_first_message(
                        &mut io,
                        first.max_bytes,
                        deflate.is_some(),
                    );
                    Some(match tokio::time::timeout(first.within, read).await {
                        Ok(read) => read,
                        Err(_) => Err(PresenceError::BadRequest {
                            message: format!(
                                "no first message within {} s",
                                first.within.as_secs_f64()
                            ),
                        }),
                    })
                }
                None => None,
            };
            let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            callback(Socket {
                stream,
                deflate,
                streams,
                frames: None,
                first,
            })
            .await;
        });
        response
            .body(Body::empty())
            .expect("a 101 of valid headers")
    }
}

/// A socket whose client speaks first: how much, and how soon.
pub(crate) struct FirstMessage {
    /// The most bytes it may take, on the wire and inflated.
    pub max_bytes: usize,
    /// How long the client has to send it.
    pub within: std::time::Duration,
}

/// A server's end of the subscription socket.
pub(crate) struct Socket {
    stream: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    /// The compression agreed, if any.
    deflate: Option<Agreed>,
    streams: Streams,
    /// How messages are compressed, once the socket follows a room and if that was agreed.
    frames: Option<Frames>,
    /// The client's first message, if it was read before (`Ok(None)`: it closed first).
    first: Option<Result<Option<String>, PresenceError>>,
}

impl Socket {
    /// The client's first message, read before the socket was handed over: its text, `Ok(None)`
    /// if the client closed or went first (or this socket was not asked to read one), or why
    /// it could not be read (a typed `bad_request`).
    pub(crate) fn first_message(&mut self) -> Result<Option<String>, PresenceError> {
        self.first.take().unwrap_or(Ok(None))
    }

    /// From now on, compressed messages are those of `room`'s stream. Call it once, before the
    /// room's first message.
    pub(crate) fn follow(&mut self, room: &str) {
        self.frames = self
            .deflate
            .take()
            .map(|agreed| Frames::new(agreed, self.streams.of(room)));
    }

    /// Sends messages as text, each compressed if that was agreed and worth it, in frames of at
    /// most [`write::FRAGMENT_BYTES`], written straight from the shared messages' bytes in one
    /// write; `preface` (a text message of this socket's own, never compressed) first, in the
    /// same write.
    pub(crate) async fn send_after(
        &mut self,
        preface: Option<&str>,
        messages: &[Arc<SharedMessage>],
    ) -> Result<(), Error> {
        let payloads: Vec<(Cow<'_, [u8]>, bool)> = preface
            .map(|text| (Cow::Borrowed(text.as_bytes()), false))
            .into_iter()
            .chain(messages.iter().map(|message| {
                match self.frames.as_mut().and_then(|f| f.payload(message)) {
                    Some(compressed) => (compressed, true),
                    None => (Cow::Borrowed(message.json().as_bytes()), false),
                }
            }))
            .collect();
        // What tungstenite still holds (a pong it owes) goes out first: frames never interleave.
        self.stream.flush().await?;
        write::write_messages(self.stream.get_mut(), &payloads).await?;
        Ok(())
    }

    /// Sends a close frame (`code`, `reason`) and flushes it.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        self.stream
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            }))
            .await
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
