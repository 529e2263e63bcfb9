//! `GET /api/presence/subscribe?room_token=…[&session_token=…][&view=full|summary|auto][&k=5][&me=…]`:
//! a WebSocket that sends the room as JSON text frames (see [`crate::RoomMessage`]). `view=full`
//! (the default) sends the room's snapshot, then each change; `view=summary` the counts, the
//! first `k` users and the user `me` (coalesced summaries); `view=auto` the full list while the
//! room is small and a summary while it is big (`summary_above`). Frames are compressed
//! (`permessage-deflate`) for clients that offer it (see [`super::websocket`]).
//!
//! `GET /api/presence/subscribe?join=1[&view=…][&k=…][&me=…]` joins and subscribes on one
//! socket, in one round trip: the client's first message is a heartbeat (the JSON body of
//! `POST /heartbeat`); the server admits it as it would that request and answers
//! `{"type":"heartbeat","answer":{…}}` (the heartbeat's answer: tokens, user id, interval)
//! followed, in the same write, by the subscription's first message; then the room as above, the
//! subscription holding the session it joined. A refused heartbeat is answered
//! `{"type":"error","error":{"code":…,"message":…}}` and the socket closes (code 4400, the
//! error's code as the reason); a subscription refused after its heartbeat was taken (a bad
//! `me`) gets the answer, then that close. Later
//! heartbeats go to `POST /heartbeat` with the answer's `session_token`. `me` defaults to the
//! answer's user.

use super::heartbeat::HeartbeatBody;
use super::websocket::{FirstMessage, Socket, Streams, Upgrade};
use axum::extract::Query;
use axum::response::Response;
use axum::Extension;
use presence_core::server::{Feed, Presence, SummaryOptions, View};
use presence_core::PresenceError;
use serde::Deserialize;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How often the server pings an idle socket, to notice peers that vanished without a FIN.
const PING_EVERY: Duration = Duration::from_secs(20);
/// At most this many messages go in one write.
const BATCH_MESSAGES: usize = 64;
/// A subscriber that cannot take a message for this long is dropped (it resyncs on reconnect).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients send nothing but pongs and closes: a small read buffer (the default is 128 KiB per
/// socket; it grows if a frame needs it) and a small message cap keep an idle subscriber cheap
/// and a chatty one harmless.
const READ_BUFFER_BYTES: usize = 256;
const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;
/// A socket that joins must send its heartbeat within this long.
const JOIN_WAIT: Duration = Duration::from_secs(10);
/// The close code after a socket's heartbeat was refused (4000-4999: the application's).
const REFUSED_CLOSE_CODE: u16 = 4400;

#[derive(Debug, Deserialize)]
pub(crate) struct SubscribeQuery {
    room_token: Option<String>,
    session_token: Option<String>,
    /// `full` (default), `summary` or `auto`.
    view: Option<String>,
    /// Users a summary lists (default 5).
    k: Option<usize>,
    /// The user whose own entry a summary follows.
    me: Option<String>,
    /// `1`: the client's first message is a heartbeat to join with.
    join: Option<String>,
}

impl SubscribeQuery {
    fn view(&self) -> Result<View, PresenceError> {
        let mut options = SummaryOptions::default();
        if let Some(k) = self.k {
            options = options.k(k);
        }
        if let Some(me) = &self.me {
            options = options.me(me.clone());
        }
        match self.view.as_deref() {
            None | Some("full") => Ok(View::Full),
            Some("summary") => Ok(View::Summary(options)),
            Some("auto") => Ok(View::Auto(options)),
            Some(other) => Err(PresenceError::BadRequest {
                message: format!("view must be full, summary or auto, not {other:?}"),
            }),
        }
    }
}

fn error(e: PresenceError) -> Response {
    super::mount::error_response(e)
}

pub(crate) async fn subscribe(
    Extension(presence): Extension<Presence>,
    Extension(sockets): Extension<super::sockets::SocketCounter>,
    Extension(streams): Extension<Streams>,
    mut parts: axum::http::request::Parts,
    query: Result<Query<SubscribeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(PresenceError::BadRequest {
                message: e.body_text(),
            })
        }
    };
    let view = match query.view() {
        Ok(view) => view,
        Err(e) => return error(e),
    };
    let joins = match query.join.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return error(PresenceError::BadRequest {
                message: format!("join must be 1 or 0, not {other:?}"),
            })
        }
    };
    if joins && (query.room_token.is_some() || query.session_token.is_some()) {
        return error(PresenceError::BadRequest {
            message: "a socket that joins gets its tokens from its heartbeat: \
                      no room_token or session_token with join=1"
                .into(),
        });
    }
    let room_token = query.room_token.filter(|_| !joins);
    if room_token.is_none() && !joins {
        return error(PresenceError::BadRequest {
            message: "missing room_token".into(),
        });
    }
    let upgrade = match Upgrade::from_parts(&mut parts) {
        Ok(upgrade) => upgrade,
        Err(e) => return error(e),
    };
    // One address may hold only so many sockets (each costs a task and buffers).
    let permit = match super::address_of(&presence, &parts) {
        Some(address) => match sockets.open(address, presence.max_sockets_per_address()) {
            Ok(permit) => Some(permit),
            Err(e) => return error(e),
        },
        None => None,
    };
    let caller = match super::auth::caller_of(&parts) {
        Ok(caller) => caller,
        Err(e) => return error(e),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let config = config
        .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES));
    let Some(room_token) = room_token else {
        // The heartbeat is the first message, read before tungstenite takes the socket (a
        // browser compresses it); as big as `POST /heartbeat` may be.
        let first = FirstMessage {
            max_bytes: super::MAX_BODY_BYTES,
            within: JOIN_WAIT,
        };
        return upgrade.on_upgrade(config, &streams, Some(first), move |socket| async move {
            // Boxed: a socket's task is as big as its biggest state for the socket's whole
            // life, and the join's (admission, heartbeat, subscribe) is needed only once.
            let joined = Box::pin(join(socket, presence, parts, caller, view)).await;
            if let Some((socket, feed, answer)) = joined {
                pump(socket, feed, Some(answer)).await;
            }
            drop(permit);
        });
    };
    let as_user = caller.as_ref().map(|identity| identity.user_id.as_str());
    let subscribed = presence
        .feed(&room_token, query.session_token.as_deref(), as_user, view)
        .await;
    match subscribed {
        Ok(subscription) => {
            upgrade.on_upgrade(config, &streams, None, move |mut socket| async move {
                socket.follow(subscription.room());
                pump(socket, subscription, None).await;
                drop(permit);
            })
        }
        Err(e) => error(e),
    }
}

/// A socket that joins: reads its heartbeat, admits it as `POST /heartbeat` would, and
/// subscribes with the answer's tokens. The socket, its feed and the answer's frame (to go
/// first) to pump; `None` once a refusal was sent, or if the client went first.
async fn join(
    mut socket: Socket,
    presence: Presence,
    parts: axum::http::request::Parts,
    caller: Option<super::Identity>,
    view: View,
) -> Option<(Socket, Feed, String)> {
    let joined = async {
        let Some(body) = socket.first_message()? else {
            return Ok(None); // gone before saying anything
        };
        let body: HeartbeatBody =
            serde_json::from_str(&body).map_err(|e| PresenceError::BadRequest {
                message: format!("unreadable heartbeat: {e}"),
            })?;
        let request = body.admit(&presence, Some(&parts))?;
        let answer = presence.heartbeat(&request).await?;
        // A summary follows the user this session is for, unless the client named another.
        let me = |options: SummaryOptions| match options.me {
            Some(_) => options,
            None => options.me(answer.user_id.clone()),
        };
        let view = match view {
            View::Summary(options) => View::Summary(me(options)),
            View::Auto(options) => View::Auto(me(options)),
            full => full,
        };
        let as_user = caller.as_ref().map(|identity| identity.user_id.as_str());
        let feed = presence
            .feed(
                &answer.room_token,
                Some(&answer.session_token),
                as_user,
                view,
            )
            .await;
        Ok(Some((answer, feed)))
    }
    .await;
    match joined {
        Ok(Some((answer, feed))) => {
            let answer =
                serde_json::to_string(&crate::socket_join::JoinAnswer::Heartbeat { answer })
                    .unwrap_or_default();
            match feed {
                Ok(feed) => {
                    socket.follow(feed.room());
                    Some((socket, feed, answer))
                }
                Err(e) => {
                    // The heartbeat was taken (its session exists): the client gets its answer,
                    // then the socket closes as a subscription refused would, and the client
                    // retries the subscription with the answer's tokens.
                    refuse(&mut socket, &answer, &e).await;
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            let body = String::from_utf8(super::error_body(&e)).unwrap_or_default();
            refuse(
                &mut socket,
                &format!(r#"{{"type":"error","error":{body}}}"#),
                &e,
            )
            .await;
            None
        }
    }
}

/// Sends `frame`, then closes with [`REFUSED_CLOSE_CODE`] and `error`'s code as the reason.
async fn refuse(socket: &mut Socket, frame: &str, error: &PresenceError) {
    let _ = tokio::time::timeout(SEND_TIMEOUT, async {
        socket.send_after(Some(frame), &[]).await?;
        socket.close(REFUSED_CLOSE_CODE, error.code()).await
    })
    .await;
}

/// Forwards messages until either side goes away. Dropping the subscription at the end starts
/// the grace deadline of the session it held, if any.
async fn pump(mut socket: Socket, mut subscription: Feed, mut preface: Option<String>) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = subscription.next() => {
                // What piled up meanwhile (a burst of joins) goes in the same write.
                let mut batch = vec![message];
                while batch.len() < BATCH_MESSAGES {
                    match subscription.try_next() {
                        Some(message) => batch.push(message),
                        None => break,
                    }
                }
                let preface = preface.take();
                let sent = socket.send_after(preface.as_deref(), &batch);
                match tokio::time::timeout(SEND_TIMEOUT, sent).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {} // pongs and client chatter are ignored
            },
            _ = ping.tick() => {
                if socket.ping().await.is_err() {
                    break;
                }
            }
        }
    }
}
