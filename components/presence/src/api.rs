//! The presence server functions, at stable paths under `/api/presence`.
//!
//! | path | method, body | does |
//! |---|---|---|
//! | `/api/presence/heartbeat` | POST, JSON | join or keep alive; returns tokens |
//! | `/api/presence/update` | POST, JSON | replace a session's state |
//! | `/api/presence/disconnect` | POST, form (`session_token=…`; `text/plain` accepted, for `navigator.sendBeacon`) | leave now |
//! | `/api/presence/going` | POST, form, as `disconnect` | the page is going: the session ends after `leave_grace_ms` (1.5 s) unless it heartbeats again |
//! | `/api/presence/list` | GET, query `room_token=…` | the room's snapshot |
//! | `/api/presence/list_page` | POST, JSON `{room_token, offset?, limit?}` | one page of the room's list, and its total |
//! | `/api/presence/subscribe` | GET, WebSocket, query `room_token=…[&session_token=…][&view=full\|summary\|auto][&k=5][&me=…]` | the room live: the full list, or a summary (counts, first `k` users, `me`) |
//! | `/api/presence/subscribe` | GET, WebSocket, query `join=1[&view=…][&k=…][&me=…]`; the first message a heartbeat's JSON | joins and subscribes on one socket: the heartbeat's answer first (`{"type":"heartbeat","answer":{…}}`), then the room as above |
//!
//! Errors are JSON `{"code": "...", "message": "...", ...}` with a 4xx status (5xx only when the
//! server is not set up for presence); a 429 carries `Retry-After`. Heartbeats and updates count
//! against per-session and per-address rates; bodies over 16 KiB are refused with 413.

// `#[server]` generates an argument struct per function whose fields cannot carry doc comments;
// each function's doc describes its arguments.
#![allow(missing_docs)]
// The heartbeat's arguments are the protocol's flat JSON fields; the browser-side function that
// `#[server]` generates for it cannot take an attribute of its own.
#![allow(clippy::too_many_arguments)]

use crate::ApiError;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use presence_core::wire::{HeartbeatResponse, PresenceKind, RoomPage, RoomSnapshot};
use serde_json::Value;

/// Joins `room` as `user` with a new `session`, or keeps that session alive.
///
/// On a server with an auth hook, `user` (and `name`, if the hook gives one) is replaced by the
/// caller's identity; the response's `user_id` says which.
///
/// The first heartbeat of a session (without `session_token`) creates it; every later one must
/// carry the returned `session_token`. `interval_ms` is the interval the client intends
/// (clamped to 1 s … 5 min, default 10 s); the session expires the interval plus min(1.5
/// intervals, 4.5 s) after its last heartbeat (2.5 intervals from 30 s). `state` (omit to keep)
/// is app-defined JSON up to 4 KiB; `away` marks a hidden tab; `idle_for_ms` an idle one (no
/// input for that long). A heartbeat that changes nothing notifies nobody.
///
/// `kind: "agent"` makes the session an agent's (a separate process, a bot: see
/// `Presence::join_agent` for code inside the server): with an auth hook, only callers its
/// `agents` rule allows; it may set `ttl_ms` (1 s … 1 h: how long it lives after each
/// heartbeat) and is not held to the per-user caps.
///
/// `invisible: true` makes the session invisible ("appear offline"): it lives and may watch
/// the room but is listed to nobody; turning it off is, to others, one `joined`. Only callers
/// the auth hook's `invisible` rule allows (without a hook: anyone, if the server sets
/// `PRESENCE_ALLOW_INVISIBLE=1`; otherwise nobody) may set it; others get `403 forbidden`.
///
/// An agent, for example:
///
/// ```text
/// curl -X POST http://127.0.0.1:3000/api/presence/heartbeat -H 'content-type: application/json' \
///   -d '{"room":"lobby","user":"bot:summary","session":"agent-1","name":"Summarizer",
///        "kind":"agent","ttl_ms":30000,"state":{"doing":"reading"}}'
/// ```
#[server(name = Heartbeat, prefix = "/api/presence", endpoint = "heartbeat", input = Json)]
pub async fn heartbeat(
    room: String,
    user: String,
    session: String,
    name: String,
    interval_ms: Option<u64>,
    state: Option<Value>,
    away: Option<bool>,
    idle_for_ms: Option<u64>,
    session_token: Option<String>,
    kind: Option<PresenceKind>,
    ttl_ms: Option<u64>,
    invisible: Option<bool>,
) -> Result<HeartbeatResponse, ApiError> {
    let presence = crate::ssr::engine().await?;
    let body = crate::ssr::HeartbeatBody {
        room,
        user,
        session,
        name,
        interval_ms,
        state,
        away,
        idle_for_ms,
        session_token,
        kind,
        ttl_ms,
        invisible,
    };
    // The same admission as a socket's join (`subscribe?join=1`): see `ssr::heartbeat`.
    let mut body = Some(body);
    let admitted = with_context::<axum::http::request::Parts, _>(|parts| {
        body.take().map(|body| body.admit(&presence, Some(parts)))
    })
    .flatten()
    .or_else(|| body.take().map(|body| body.admit(&presence, None)))
    .expect("the body is admitted once");
    let request = crate::ssr::respond(admitted)?;
    crate::ssr::respond(presence.heartbeat(&request).await)
}

/// Replaces a session's app-defined state (`null` clears it). Subscribers get one `updated`
/// if it changed, nothing if it did not.
#[server(name = UpdateState, prefix = "/api/presence", endpoint = "update", input = Json)]
pub async fn update_state(session_token: String, state: Value) -> Result<(), ApiError> {
    let presence = crate::ssr::engine().await?;
    crate::ssr::check_address(&presence)?;
    crate::ssr::respond(match crate::ssr::caller()? {
        Some(identity) => {
            presence
                .update_state_as(&identity.user_id, &session_token, state)
                .await
        }
        None => presence.update_state(&session_token, state).await,
    })
}

/// Ends a session now. Takes a form body, so `navigator.sendBeacon` can call it with
/// `URLSearchParams` (or a `text/plain` string `session_token=…`) and no custom headers.
#[server(name = Disconnect, prefix = "/api/presence", endpoint = "disconnect")]
pub async fn disconnect(session_token: String) -> Result<(), ApiError> {
    let presence = crate::ssr::engine().await?;
    crate::ssr::respond(match crate::ssr::caller()? {
        Some(identity) => {
            presence
                .disconnect_as(&identity.user_id, &session_token)
                .await
        }
        None => presence.disconnect(&session_token).await,
    })
}

/// Says this session's page is going (it unloads, or its `use_presence` unmounts): the session
/// ends after `leave_grace_ms` (default 1.5 s) unless it heartbeats again first, so a reload,
/// an in-app navigation or a back/forward-cache restore is not a leave. Subscribers then see it
/// leave as `disconnected`, last seen at this moment. A form body, like `disconnect`, so
/// `navigator.sendBeacon` can call it.
#[server(name = Going, prefix = "/api/presence", endpoint = "going")]
pub async fn going(session_token: String) -> Result<(), ApiError> {
    let presence = crate::ssr::engine().await?;
    crate::ssr::respond(match crate::ssr::caller()? {
        Some(identity) => presence.going_as(&identity.user_id, &session_token).await,
        None => presence.going(&session_token).await,
    })
}

/// The room that `room_token` grants, in its stable order. Counts against the caller's address
/// rate, like a heartbeat. The JSON is the room's snapshot (with `"type":"snapshot"`, as the
/// subscription sends it), built once per room version and shared by every reader.
#[server(name = ListRoom, prefix = "/api/presence", endpoint = "list", input = GetUrl)]
pub async fn list(room_token: String) -> Result<RoomList, ApiError> {
    let presence = crate::ssr::engine().await?;
    crate::ssr::check_address(&presence)?;
    crate::ssr::respond(
        presence
            .list_shared(&room_token)
            .await
            .map(RoomList::shared),
    )
}

/// One page of the room that `room_token` grants, in its stable order: `limit` users (default
/// 100, at most 200) from index `offset` (default 0), and how many the whole list has. What
/// `<FacePile/>`'s "+N" list loads in a room whose subscription is a summary. Counts against the
/// caller's address rate.
#[server(name = ListPage, prefix = "/api/presence", endpoint = "list_page", input = Json)]
pub async fn list_page(
    room_token: String,
    offset: Option<u64>,
    limit: Option<u64>,
) -> Result<RoomPage, ApiError> {
    let presence = crate::ssr::engine().await?;
    crate::ssr::check_address(&presence)?;
    let shared = presence.list_shared(&room_token).await;
    crate::ssr::respond(shared.map(|message| match message.message() {
        presence_core::wire::RoomMessage::Snapshot(s) => {
            RoomPage::of(s, offset.unwrap_or(0), limit.unwrap_or(100))
        }
        other => unreachable!("a room list is a snapshot, not {other:?}"),
    }))
}

/// What [`list`] returns: a room's snapshot.
#[derive(Debug, Clone)]
pub struct RoomList(ListInner);

#[derive(Debug, Clone)]
enum ListInner {
    Snapshot(RoomSnapshot),
    /// The message every reader of this room version shares; written out as its cached JSON.
    #[cfg(feature = "ssr")]
    Shared(std::sync::Arc<presence_core::server::SharedMessage>),
}

impl RoomList {
    #[cfg(feature = "ssr")]
    fn shared(message: std::sync::Arc<presence_core::server::SharedMessage>) -> Self {
        RoomList(ListInner::Shared(message))
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &RoomSnapshot {
        match &self.0 {
            ListInner::Snapshot(s) => s,
            #[cfg(feature = "ssr")]
            ListInner::Shared(message) => match message.message() {
                presence_core::wire::RoomMessage::Snapshot(s) => s,
                other => unreachable!("a room list is a snapshot, not {other:?}"),
            },
        }
    }

    /// The snapshot, owned.
    pub fn into_snapshot(self) -> RoomSnapshot {
        match self.0 {
            ListInner::Snapshot(s) => s,
            #[cfg(feature = "ssr")]
            ListInner::Shared(_) => self.snapshot().clone(),
        }
    }
}

impl serde::Serialize for RoomList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ListInner::Snapshot(s) => s.serialize(serializer),
            #[cfg(feature = "ssr")]
            ListInner::Shared(message) => {
                let raw = serde_json::value::RawValue::from_string(message.json().to_owned())
                    .map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for RoomList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RoomSnapshot::deserialize(deserializer).map(|s| RoomList(ListInner::Snapshot(s)))
    }
}
