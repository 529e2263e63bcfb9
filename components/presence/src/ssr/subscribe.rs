//! `GET /api/presence/subscribe?room_token=…[&session_token=…]`: a WebSocket that sends the room's
//! snapshot, then each change, as JSON text frames (see [`crate::RoomMessage`]).

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::Query;
use axum::response::Response;
use axum::Extension;
use presence_core::server::{Presence, Subscription};
use presence_core::PresenceError;
use serde::Deserialize;
use std::time::Duration;

/// How often the server pings an idle socket, to notice peers that vanished without a FIN.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A subscriber that cannot take a message for this long is dropped (it resyncs on reconnect).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients send nothing but pongs and closes: a small read buffer (the default is 128 KiB per
/// socket) and a small message cap keep an idle subscriber cheap and a chatty one harmless.
const READ_BUFFER_BYTES: usize = 4 * 1024;
const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
pub(crate) struct SubscribeQuery {
    room_token: Option<String>,
    session_token: Option<String>,
}

fn error(e: PresenceError) -> Response {
    super::mount::error_response(e)
}

pub(crate) async fn subscribe(
    Extension(presence): Extension<Presence>,
    Extension(sockets): Extension<super::sockets::SocketCounter>,
    parts: axum::http::request::Parts,
    query: Result<Query<SubscribeQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(PresenceError::BadRequest {
                message: e.body_text(),
            })
        }
    };
    let Some(room_token) = query.room_token else {
        return error(PresenceError::BadRequest {
            message: "missing room_token".into(),
        });
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return error(PresenceError::BadRequest {
                message: format!("expected a WebSocket upgrade: {}", e.body_text()),
            })
        }
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
    let subscribed = match &caller {
        Some(identity) => {
            presence
                .subscribe_as(
                    &identity.user_id,
                    &room_token,
                    query.session_token.as_deref(),
                )
                .await
        }
        None => {
            presence
                .subscribe(&room_token, query.session_token.as_deref())
                .await
        }
    };
    match subscribed {
        Ok(subscription) => upgrade
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
            .on_upgrade(move |socket| async move {
                pump(socket, subscription).await;
                drop(permit);
            }),
        Err(e) => error(e),
    }
}

/// Forwards messages until either side goes away. Dropping the subscription at the end starts
/// the grace deadline of the session it held, if any.
async fn pump(mut socket: WebSocket, mut subscription: Subscription) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = subscription.next() => {
                let frame = Message::Text(message.json().to_owned().into());
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {} // pongs and client chatter are ignored
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}
