//! `GET /api/presence/subscribe?room_token=…[&session_token=…][&view=full|summary|auto][&k=5][&me=…]`:
//! a WebSocket that sends the room as JSON text frames (see [`crate::RoomMessage`]). `view=full`
//! (the default) sends the room's snapshot, then each change; `view=summary` the counts, the
//! first `k` users and the user `me` (coalesced summaries); `view=auto` the full list while the
//! room is small and a summary while it is big (`summary_above`). Frames are compressed
//! (`permessage-deflate`) for clients that offer it (see [`super::websocket`]).

use super::websocket::{Socket, Streams, Upgrade};
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
    let Some(room_token) = query.room_token else {
        return error(PresenceError::BadRequest {
            message: "missing room_token".into(),
        });
    };
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
    let as_user = caller.as_ref().map(|identity| identity.user_id.as_str());
    let subscribed = presence
        .feed(&room_token, query.session_token.as_deref(), as_user, view)
        .await;
    match subscribed {
        Ok(subscription) => {
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .write_buffer_size(0)
                .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES));
            let room = subscription.room().to_owned();
            upgrade.on_upgrade(config, &streams, &room, move |socket| async move {
                pump(socket, subscription).await;
                drop(permit);
            })
        }
        Err(e) => error(e),
    }
}

/// Forwards messages until either side goes away. Dropping the subscription at the end starts
/// the grace deadline of the session it held, if any.
async fn pump(mut socket: Socket, mut subscription: Feed) {
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
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(&batch)).await {
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
