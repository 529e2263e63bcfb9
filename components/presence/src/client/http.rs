//! The hook's requests to the presence server: `fetch` at the configured server URL (or this
//! page's origin), with the page's cookies (an auth hook may read them, across origins too).
//!
//! They are the server functions of [`crate::api`] on the wire (the same paths and bodies);
//! the hook calls them itself so that it can follow `UsePresenceOptions::server_url` without
//! touching the app's own server functions, and send credentials to another origin.

use crate::{ApiError, API_PREFIX};
use presence_core::wire::{HeartbeatResponse, RoomPage};
use presence_core::PresenceError;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestCredentials, RequestInit, RequestMode, Response};

use super::machine::HeartbeatArgs;

/// `POST {base}/api/presence/heartbeat`.
pub(crate) async fn heartbeat(
    base: &str,
    args: &HeartbeatArgs,
) -> Result<HeartbeatResponse, ApiError> {
    let text = post(base, "heartbeat", "application/json", heartbeat_body(args)).await?;
    serde_json::from_str(&text)
        .map_err(|e| unavailable(format!("unreadable answer to a heartbeat: {e}")))
}

/// A heartbeat's JSON: the body of `POST /heartbeat`, and the first message of a socket that
/// joins.
pub(crate) fn heartbeat_body(args: &HeartbeatArgs) -> String {
    json!({
        "room": args.room,
        "user": args.user,
        "session": args.session,
        "name": args.name,
        "interval_ms": args.interval_ms,
        "state": args.state,
        "away": args.away,
        "idle_for_ms": args.idle_for_ms,
        "invisible": args.invisible,
        "session_token": args.token,
    })
    .to_string()
}

/// `POST {base}/api/presence/list_page`.
pub(crate) async fn list_page(
    base: &str,
    room_token: &str,
    offset: u64,
    limit: u64,
) -> Result<RoomPage, ApiError> {
    let body = json!({ "room_token": room_token, "offset": offset, "limit": limit });
    let text = post(base, "list_page", "application/json", body.to_string()).await?;
    serde_json::from_str(&text)
        .map_err(|e| unavailable(format!("unreadable page of the room's list: {e}")))
}

/// `POST {base}/api/presence/update`.
pub(crate) async fn update_state(
    base: &str,
    session_token: &str,
    state: Value,
) -> Result<(), ApiError> {
    let body = json!({ "session_token": session_token, "state": state });
    post(base, "update", "application/json", body.to_string())
        .await
        .map(drop)
}

/// `POST {base}/api/presence/disconnect`.
pub(crate) async fn disconnect(base: &str, session_token: &str) -> Result<(), ApiError> {
    post(
        base,
        "disconnect",
        "application/x-www-form-urlencoded",
        form_body(session_token),
    )
    .await
    .map(drop)
}

/// Says the session's page is going with `navigator.sendBeacon`, the one request a closing page
/// may still send: the session ends after the server's leave grace unless it heartbeats again.
pub(crate) fn going(base: &str, session_token: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&form_body(session_token)) else {
        return;
    };
    let _ = window
        .navigator()
        .send_beacon_with_opt_url_search_params(&endpoint(base, "going"), Some(&params));
}

/// The subscription's WebSocket URL for these tokens.
pub(crate) fn socket_url(
    base: &str,
    room_token: &str,
    session_token: &str,
    list: &ListQuery,
) -> String {
    let tokens = format!(
        "room_token={}&session_token={}",
        String::from(js_sys::encode_uri_component(room_token)),
        String::from(js_sys::encode_uri_component(session_token)),
    );
    subscribe_url(base, &tokens, list)
}

/// The URL of a subscription socket that joins with the heartbeat it sends first.
pub(crate) fn socket_join_url(base: &str, list: &ListQuery) -> String {
    subscribe_url(base, "join=1", list)
}

/// `ws(s)://` of the server URL, or of this page's host, at the subscribe path.
fn subscribe_url(base: &str, params: &str, list: &ListQuery) -> String {
    let origin = if base.is_empty() {
        let location = web_sys::window().map(|w| w.location());
        let protocol = location.as_ref().and_then(|l| l.protocol().ok());
        let host = location
            .and_then(|l| l.host().ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{}//{host}", protocol.as_deref().unwrap_or("http:"))
    } else {
        base.to_string()
    };
    let origin = match origin.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => origin,
    };
    let mut url = format!(
        "{origin}{}?{params}&view={}&k={}",
        crate::SUBSCRIBE_PATH,
        list.mode.as_str(),
        list.size,
    );
    if let Some(me) = &list.me {
        url.push_str("&me=");
        url.push_str(&String::from(js_sys::encode_uri_component(me)));
    }
    url
}

/// Which list a subscription asks for (`view`, `k`, `me`).
pub(crate) struct ListQuery {
    pub mode: crate::ListMode,
    pub size: usize,
    /// This tab's user, whose own entry a summary follows.
    pub me: Option<String>,
}

fn form_body(session_token: &str) -> String {
    format!(
        "session_token={}",
        String::from(js_sys::encode_uri_component(session_token))
    )
}

fn endpoint(base: &str, name: &str) -> String {
    format!("{base}{API_PREFIX}/{name}")
}

/// Sends one request; the answer's text if it succeeded, the server's typed error if not.
async fn post(
    base: &str,
    name: &str,
    content_type: &str,
    body: String,
) -> Result<String, ApiError> {
    let response = fetch(&endpoint(base, name), content_type, body)
        .await
        .map_err(|e| unavailable(format!("request failed: {}", describe(&e))))?;
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string()),
        Err(_) => None,
    }
    .unwrap_or_default();
    if response.ok() {
        Ok(text)
    } else {
        // The server's typed error (`{"code": …}`); anything else (a proxy's page) is unavailable.
        Err(ApiError(serde_json::from_str(&text).unwrap_or_else(|_| {
            PresenceError::Unavailable {
                message: format!("HTTP {} from {name}", response.status()),
            }
        })))
    }
}

async fn fetch(url: &str, content_type: &str, body: String) -> Result<Response, JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let headers = Headers::new()?;
    headers.set("content-type", content_type)?;
    headers.set("accept", "application/json")?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_mode(RequestMode::Cors);
    init.set_credentials(RequestCredentials::Include);
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    let request = Request::new_with_str_and_init(url, &init)?;
    JsFuture::from(window.fetch_with_request(&request))
        .await?
        .dyn_into::<Response>()
}

fn unavailable(message: String) -> ApiError {
    ApiError(PresenceError::Unavailable { message })
}

fn describe(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "network error".into())
}
