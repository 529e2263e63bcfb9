//! The presence HTTP API through a real axum router: server functions via `oneshot`, the
//! WebSocket subscription on a loopback port.
#![cfg(feature = "ssr")]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::any;
use axum::Router;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use leptos_presence::ssr::{ManualClock, Presence, PresenceConfig, PresenceRouterExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

#[path = "http_api/deflate.rs"]
mod deflate;
#[path = "http_api/join_socket.rs"]
mod join_socket;

fn app(presence: Presence) -> Router {
    Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .with_presence(presence)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// What `navigator.sendBeacon(url, "session_token=…")` sends: POST, text/plain, Accept */*.
fn beacon_text(token: &str) -> Request<Body> {
    Request::post("/api/presence/disconnect")
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .header(header::ACCEPT, "*/*")
        .body(Body::from(format!("session_token={token}")))
        .unwrap()
}

/// What `navigator.sendBeacon(url, new URLSearchParams({session_token}))` sends.
fn beacon_form(token: &str) -> Request<Body> {
    beacon_form_to("disconnect", token)
}

/// [`beacon_form`] to another endpoint (the client's `going` beacon).
fn beacon_form_to(endpoint: &str, token: &str) -> Request<Body> {
    Request::post(format!("/api/presence/{endpoint}"))
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .header(header::ACCEPT, "*/*")
        .body(Body::from(format!("session_token={token}")))
        .unwrap()
}

fn list_req(room_token: &str) -> Request<Body> {
    let q: String = url_encode(room_token);
    Request::get(format!("/api/presence/list?room_token={q}"))
        .body(Body::empty())
        .unwrap()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn join(app: &Router, room: &str, user: &str, session: &str) -> Value {
    let (status, body) = send(
        app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": room, "user": user, "session": session, "name": user.to_uppercase()}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn heartbeat_list_and_disconnect_by_beacon() {
    let app = app(Presence::start(PresenceConfig::default()));
    let joined = join(&app, "r1", "ann", "tab-1").await;
    assert_eq!(joined["joined"], true);
    assert_eq!(joined["interval_ms"], 10_000);
    let session_token = joined["session_token"].as_str().unwrap().to_string();
    let room_token = joined["room_token"].as_str().unwrap().to_string();
    assert_eq!(session_token.len(), 64);

    let (status, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["room"], "r1");
    assert_eq!(list["users"][0]["user_id"], "ann");
    assert_eq!(list["users"][0]["name"], "ANN");
    assert_eq!(list["users"][0]["online"], true);
    assert_eq!(list["users"][0]["sessions"][0]["session_id"], "tab-1");

    // A second heartbeat with the token keeps the same session.
    let (status, again) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "ann", "session": "tab-1", "name": "ANN",
                   "session_token": session_token, "state": {"section": "intro"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["joined"], false);
    assert_eq!(again["session_token"], session_token.as_str());

    let (status, body) = send(&app, beacon_text(&session_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(list["users"][0]["online"], false);
    assert!(list["users"][0]["last_seen"].as_u64().is_some());

    // The form-encoded beacon works too.
    let second = join(&app, "r1", "bob", "tab-2").await;
    let (status, _) = send(&app, beacon_form(second["session_token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert!(list["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["online"] == false));
}

#[tokio::test]
async fn going_by_beacon_keeps_the_session_for_the_leave_grace_and_a_heartbeat_takes_it_back() {
    let clock = ManualClock::new(1_700_000_000_000);
    let presence = Presence::start_with_clock(
        PresenceConfig::default().leave_grace_ms(1_500),
        clock.clone(),
    );
    let app = app(presence);
    let joined = join(&app, "r1", "ann", "tab-1").await;
    let session_token = joined["session_token"].as_str().unwrap().to_string();
    let room_token = joined["room_token"].as_str().unwrap().to_string();
    let (status, body) = send(&app, beacon_form_to("going", &session_token)).await;
    assert_eq!((status, &body), (StatusCode::OK, &Value::Null));
    // Still listed online during the grace; the reloaded page's heartbeat keeps the session.
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(list["users"][0]["online"], true);
    clock.advance(1_000);
    let (status, again) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "ann", "session": "tab-1", "name": "ANN",
                   "session_token": session_token}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["joined"], false);
    clock.advance(5_000);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(
        list["users"][0]["online"], true,
        "the goodbye was taken back"
    );
    // Not taken back: offline once the grace is over.
    send(&app, beacon_form_to("going", &session_token)).await;
    clock.advance(1_500);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(list["users"][0]["online"], false);
    // A token nobody holds: the typed error, as for disconnect.
    let (status, body) = send(&app, beacon_form_to("going", &session_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_session_token");
}

#[tokio::test]
async fn a_forged_token_gets_a_4xx_with_a_clear_message_and_removes_nothing() {
    let app = app(Presence::start(PresenceConfig::default()));
    let joined = join(&app, "r1", "ann", "tab-1").await;
    let room_token = joined["room_token"].as_str().unwrap();
    let forged = "ab".repeat(32);
    for request in [beacon_text(&forged), beacon_form("not-a-token")] {
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["code"], "invalid_session_token");
        assert_eq!(
            body["message"],
            "the session token is not valid for any live session"
        );
    }
    let (status, body) = send(
        &app,
        post_json(
            "/api/presence/update",
            json!({"session_token": forged, "state": {"x": 1}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Hijacking the session id without its token.
    let (status, body) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "mallory", "session": "tab-1", "name": "M"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "session_token_mismatch");

    let (_, list) = send(&app, list_req(room_token)).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1);
    assert_eq!(list["users"][0]["online"], true);
    assert_eq!(list["users"][0]["name"], "ANN");
}

#[tokio::test]
async fn bad_input_is_a_typed_400() {
    let app = app(Presence::start(PresenceConfig::default()));
    let (status, body) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "", "user": "u", "session": "s", "name": "n"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input");
    assert_eq!(body["field"], "room");
    assert!(body["reason"].as_str().unwrap().contains("empty"));
    assert_eq!(body["message"], "invalid room: must not be empty");

    let (status, body) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r", "user": "u", "session": "s", "name": "x".repeat(65)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name");

    // Missing arguments and malformed JSON never reach the engine.
    let (status, body) = send(
        &app,
        post_json("/api/presence/heartbeat", json!({"room": "r"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");
    let request = Request::post("/api/presence/heartbeat")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");

    let (status, body) = send(&app, list_req("0123.r1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "invalid_room_token");
    assert!(body["message"].as_str().unwrap().contains("room token"));
}

/// Ann joins r1 under `config`; then `second` is sent as a join. Returns its status and body.
async fn after_one_join(config: PresenceConfig, second: Value) -> (StatusCode, Value) {
    let app = app(Presence::start(config));
    join(&app, "r1", "ann", "tab-1").await;
    send(&app, post_json("/api/presence/heartbeat", second)).await
}

#[tokio::test]
async fn a_full_room_is_a_409() {
    let (status, body) = after_one_join(
        PresenceConfig::default().max_sessions_per_room(1),
        json!({"room": "r1", "user": "bob", "session": "tab-2", "name": "Bob"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "room_full");
    assert_eq!(body["limit"], 1);
}

#[tokio::test]
async fn unmounted_presence_says_so() {
    let app = Router::new().route("/api/{*fn_name}", any(leptos_axum::handle_server_fns));
    leptos_presence::ssr::register_server_fns();
    let (status, body) = send(&app, beacon_text(&"ab".repeat(32))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "unavailable");
}

// ---- the live subscription, over a real socket ----

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn connect(
    addr: std::net::SocketAddr,
    room_token: &str,
    session_token: Option<&str>,
) -> Socket {
    let mut url = format!(
        "ws://{addr}/api/presence/subscribe?room_token={}",
        url_encode(room_token)
    );
    if let Some(t) = session_token {
        url.push_str(&format!("&session_token={t}"));
    }
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn silent_for(socket: &mut Socket, ms: u64) {
    match tokio::time::timeout(Duration::from_millis(ms), socket.next()).await {
        Err(_) => {}
        Ok(Some(Ok(Message::Ping(_)))) => {}
        Ok(other) => panic!("expected silence, got {other:?}"),
    }
}

#[tokio::test]
async fn the_subscription_gets_one_event_per_change_and_none_for_a_heartbeat() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let room_token = presence.room_token("r1").unwrap();
    let mut socket = connect(addr, &room_token, None).await;
    let snapshot = next_json(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["users"], json!([]));

    let joined = join(&app, "r1", "ann", "tab-1").await;
    let event = next_json(&mut socket).await;
    assert_eq!(event["type"], "joined");
    assert_eq!(event["seq"], 1);
    assert_eq!(event["user"]["user_id"], "ann");
    assert_eq!(event["session_id"], "tab-1");

    let token = joined["session_token"].as_str().unwrap();
    for _ in 0..3 {
        let (status, _) = send(
            &app,
            post_json(
                "/api/presence/heartbeat",
                json!({"room": "r1", "user": "ann", "session": "tab-1", "name": "ANN",
                       "session_token": token}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    silent_for(&mut socket, 300).await;

    let (status, _) = send(
        &app,
        post_json(
            "/api/presence/update",
            json!({"session_token": token, "state": {"typing": true}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let event = next_json(&mut socket).await;
    assert_eq!(event["type"], "updated");
    // The one session that changed, beside the user's own fields (which list no sessions).
    assert_eq!(event["session"]["state"], json!({"typing": true}));
    assert_eq!(event["session"]["session_id"], event["session_id"]);
    assert!(event["user"].get("sessions").is_none(), "{event}");
    silent_for(&mut socket, 200).await;

    send(&app, beacon_text(token)).await;
    let event = next_json(&mut socket).await;
    assert_eq!(event["type"], "left");
    assert_eq!(event["reason"], "disconnected");
    assert_eq!(event["user"]["online"], false);
}

#[tokio::test]
async fn a_closed_session_socket_ends_the_session_after_the_grace() {
    let presence = Presence::start(PresenceConfig::default().subscription_grace_ms(300));
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let joined = join(&app, "r1", "ann", "tab-1").await;
    let room_token = joined["room_token"].as_str().unwrap();
    let mut watcher = connect(addr, room_token, None).await;
    next_json(&mut watcher).await;
    let mut tab = connect(addr, room_token, joined["session_token"].as_str()).await;
    next_json(&mut tab).await;
    tab.close(None).await.unwrap();
    drop(tab);
    let started = std::time::Instant::now();
    let event = next_json(&mut watcher).await;
    assert_eq!(event["type"], "left");
    assert_eq!(event["reason"], "expired");
    // Long before the 14.5 s heartbeat timeout, but not before the grace.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn subscribe_rejects_bad_requests_with_typed_errors() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let (status, body) = send(
        &app,
        Request::get("/api/presence/subscribe")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");
    let token = url_encode(&presence.room_token("r1").unwrap());
    let (status, body) = send(
        &app,
        Request::get(format!("/api/presence/subscribe?room_token={token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("WebSocket"));

    let addr = serve(app).await;
    let url = format!("ws://{addr}/api/presence/subscribe?room_token=forged.r1");
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Sending junk frames does not disturb the subscription.
    let mut socket = connect(addr, &presence.room_token("r1").unwrap(), None).await;
    next_json(&mut socket).await;
    socket.send(Message::Text("hello".into())).await.unwrap();
    silent_for(&mut socket, 100).await;
}

/// An engine whose per-address rate is 1/s with bursts of `burst`.
fn rate_limited(burst: u32) -> Presence {
    Presence::start(
        PresenceConfig::default().address_rate(leptos_presence::ssr::RateLimit::new(1.0, burst)),
    )
}

/// The request as if it came over a connection from `address`.
fn from_address(address: [u8; 4], mut request: Request<Body>) -> Request<Body> {
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            address, 40_000,
        ))));
    request
}

#[tokio::test]
async fn limits_say_so_with_typed_errors_and_retry_after() {
    let app = app(rate_limited(2));
    let from = from_address;
    let join = |user: &str| {
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": user, "session": user, "name": user}),
        )
    };
    assert_eq!(
        send(&app, from([10, 0, 0, 1], join("a"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, from([10, 0, 0, 1], join("b"))).await.0,
        StatusCode::OK
    );
    let response = app
        .clone()
        .oneshot(from([10, 0, 0, 1], join("c")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], "too_many_requests");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    // Another address is unaffected.
    assert_eq!(
        send(&app, from([10, 0, 0, 2], join("d"))).await.0,
        StatusCode::OK
    );

    // A body over the cap is refused before it is read.
    let big = post_json(
        "/api/presence/heartbeat",
        json!({"room": "r1", "user": "e", "session": "e", "name": "e", "state": {"x": "y".repeat(20_000)}}),
    );
    let (status, body) = send(&app, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(body["limit"], leptos_presence::ssr::MAX_BODY_BYTES);
    // So is a streamed one, when it runs past the cap.
    let chunks = futures::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(bytes_of(&"z".repeat(1024)))),
    );
    let streamed = Request::post("/api/presence/heartbeat")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, body) = send(&app, streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

fn bytes_of(s: &str) -> axum::body::Bytes {
    axum::body::Bytes::from(s.to_owned())
}

#[tokio::test]
async fn per_user_caps_are_409s() {
    let (status, body) = after_one_join(
        PresenceConfig::default().max_rooms_per_user(1),
        json!({"room": "r2", "user": "ann", "session": "tab-2", "name": "Ann"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "too_many_rooms");
}

// ---- the auth hook ----

fn auth_app(presence: Presence) -> Router {
    use leptos_presence::ssr::{Identity, PresenceAuth};
    // The app's own sign-in, here a header (in the demo, a signed cookie).
    let auth = PresenceAuth::new(|parts| {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(Identity::new(format!("id:{user}")).name(user))
    });
    Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .with_presence_auth(presence, auth)
}

/// A heartbeat with `body`, from a caller the test's auth hook knows as `user`.
async fn beat_as(app: &Router, user: &str, body: Value) -> (StatusCode, Value) {
    send(
        app,
        as_user(user, post_json("/api/presence/heartbeat", body)),
    )
    .await
}

/// The user ids of a listed room, in order.
fn user_ids(list: &Value) -> Vec<&str> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect()
}

fn as_user(user: &str, mut request: Request<Body>) -> Request<Body> {
    request
        .headers_mut()
        .insert("x-user", user.parse().unwrap());
    request
}

/// A WebSocket request to `url`, as `x-user: {user}` (for the test auth hook) if given.
fn socket_request(
    url: String,
    user: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    if let Some(user) = user {
        request
            .headers_mut()
            .insert("x-user", user.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn with_an_auth_hook_identity_is_stamped_and_sessions_are_guarded() {
    let app = auth_app(Presence::start(PresenceConfig::default()));
    let claim = |claimed: &str| {
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": claimed, "session": format!("tab-{claimed}"), "name": "Whoever"}),
        )
    };
    // Alice claims to be mallory: the server stamps alice.
    let (status, alice) = send(&app, as_user("alice", claim("mallory"))).await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    assert_eq!(alice["user_id"], "id:alice");
    let (_, list) = send(&app, list_req(alice["room_token"].as_str().unwrap())).await;
    assert_eq!(list["users"][0]["user_id"], "id:alice");
    assert_eq!(list["users"][0]["name"], "alice");
    // No identity, no entry.
    let (status, body) = send(&app, claim("nobody")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "unauthenticated");

    // Bob holding Alice's token still cannot act on her session; Alice can.
    let token = alice["session_token"].as_str().unwrap();
    let update = |user: &str| {
        as_user(
            user,
            post_json(
                "/api/presence/update",
                json!({"session_token": token, "state": {"x": 1}}),
            ),
        )
    };
    let (status, body) = send(&app, update("bob")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, body) = send(&app, as_user("bob", beacon_text(token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, list) = send(&app, list_req(alice["room_token"].as_str().unwrap())).await;
    assert_eq!(list["users"][0]["online"], true, "bob changed nothing");
    assert_eq!(send(&app, update("alice")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, as_user("alice", beacon_text(token))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_an_auth_hook_a_session_socket_must_be_the_callers() {
    let presence = Presence::start(PresenceConfig::default());
    let app = auth_app(presence.clone());
    let addr = serve(app.clone()).await;
    let (_, alice) = beat_as(
        &app,
        "alice",
        json!({"room": "r1", "user": "x", "session": "tab-a", "name": "A"}),
    )
    .await;
    let room_token = url_encode(alice["room_token"].as_str().unwrap());
    let session_token = alice["session_token"].as_str().unwrap();
    let connect_as = |user: Option<&str>, with_session: bool| {
        let url = format!(
            "ws://{addr}/api/presence/subscribe?room_token={room_token}{}",
            if with_session {
                format!("&session_token={session_token}")
            } else {
                String::new()
            }
        );
        tokio_tungstenite::connect_async(socket_request(url, user))
    };
    let status_of = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        status_of(connect_as(Some("bob"), true).await),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(connect_as(None, false).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(connect_as(Some("alice"), true).await),
        StatusCode::SWITCHING_PROTOCOLS
    );
    // An observer the app knows may watch with the room token alone.
    assert_eq!(
        status_of(connect_as(Some("bob"), false).await),
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn json_endpoints_refuse_simple_cross_site_bodies() {
    let app = auth_app(Presence::start(PresenceConfig::default()));
    // What a cross-site <form enctype="text/plain"> can send with the victim's cookies.
    let forged = Request::post("/api/presence/heartbeat")
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-user", "victim")
        .body(Body::from(
            json!({"room": "r1", "user": "victim", "session": "s", "name": "V"}).to_string(),
        ))
        .unwrap();
    let (status, body) = send(&app, forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let (status, _) = send(
        &app,
        Request::post("/api/presence/update")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("session_token=x&state=1"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_rate_limited_and_a_forged_one_is_not() {
    let app = app(Presence::start(
        PresenceConfig::default()
            .address_rate(leptos_presence::ssr::RateLimit::new(1.0, 1))
            .trusted_proxies(["10.0.0.1".parse().unwrap()]),
    ));
    let join =
        |user: &str, peer: [u8; 4], forwarded: &str| {
            let mut request = post_json(
                "/api/presence/heartbeat",
                json!({"room": "r1", "user": user, "session": user, "name": user}),
            );
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                std::net::SocketAddr::from((peer, 40_000)),
            ));
            request
                .headers_mut()
                .insert("x-forwarded-for", forwarded.parse().unwrap());
            request
        };
    let proxy = [10, 0, 0, 1];
    // Two clients behind the proxy are two addresses, each with its own budget.
    assert_eq!(
        send(&app, join("a", proxy, "198.51.100.1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, join("b", proxy, "198.51.100.2")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, join("c", proxy, "198.51.100.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the first client's budget is spent"
    );
    // A client talking directly cannot dodge its limit by writing the header itself.
    let direct = [203, 0, 113, 5];
    assert_eq!(
        send(&app, join("d", direct, "192.0.2.1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, join("e", direct, "192.0.2.2")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---- probe round 2: methods, media types, slow bodies, reads, sockets ----

#[tokio::test]
async fn a_wrong_method_is_a_typed_405_that_names_the_right_one() {
    let app = app(Presence::start(PresenceConfig::default()));
    for (method, path, allowed) in [
        ("GET", "/api/presence/heartbeat", "POST"),
        ("PUT", "/api/presence/update", "POST"),
        ("GET", "/api/presence/disconnect", "POST"),
        ("POST", "/api/presence/list", "GET"),
        ("DELETE", "/api/presence/subscribe", "GET"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()[header::ALLOW], allowed);
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
        assert_eq!(body["allowed"], allowed);
        assert!(body["message"].as_str().unwrap().contains(allowed));
    }
}

#[tokio::test]
async fn json_is_recognised_by_its_media_type_not_a_prefix() {
    let app = app(Presence::start(PresenceConfig::default()));
    let with_type = |content_type: &str, user: &str| {
        Request::post("/api/presence/heartbeat")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json")
            .body(Body::from(
                json!({"room": "r1", "user": user, "session": user, "name": user}).to_string(),
            ))
            .unwrap()
    };
    let (status, body) = send(&app, with_type("Application/JSON; charset=UTF-8", "a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&app, with_type("application/jsonx", "b")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");
    let room_token = presence_room_token(&app).await;
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(user_ids(&list), ["a", "probe"], "b never joined");
}

/// The room token of "r1", from a fresh join of user "probe".
async fn presence_room_token(app: &Router) -> String {
    join(app, "r1", "probe", "probe-tab").await["room_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_finishes_is_cut_off_with_a_408() {
    let app = app(Presence::start(PresenceConfig::default()));
    // One byte, then nothing: a slow-loris client holding the request open.
    let trickle = futures::stream::iter([Ok::<_, std::io::Error>(bytes_of("{"))])
        .chain(futures::stream::pending());
    let request = Request::post("/api/presence/heartbeat")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(trickle))
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["code"], "request_timeout");
    assert_eq!(
        body["limit_ms"],
        leptos_presence::ssr::BODY_TIMEOUT.as_millis() as u64
    );
}

#[tokio::test]
async fn list_counts_against_the_address_rate_and_answers_the_shared_snapshot() {
    let app = app(rate_limited(3));
    let from = |request| from_address([10, 0, 0, 9], request);
    let (status, joined) = send(
        &app,
        from(post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "ann", "session": "s1", "name": "Ann"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = joined["room_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, list) = send(&app, from(list_req(token))).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["type"], "snapshot");
        assert_eq!(list["room"], "r1");
        assert_eq!(list["users"][0]["name"], "Ann");
    }
    let (status, body) = send(&app, from(list_req(token))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "too_many_requests");
}

#[tokio::test]
async fn names_ids_and_state_that_cannot_be_shown_honestly_are_typed_400s() {
    let app = app(Presence::start(PresenceConfig::default()));
    let mut deep = json!(1);
    for _ in 0..124 {
        deep = json!([deep]);
    }
    for (body, field) in [
        (
            json!({"room": "r1", "user": "a", "session": "s", "name": "A", "state": deep}),
            "state",
        ),
        (
            json!({"room": "r1", "user": "a", "session": "s", "name": "Ada\u{202E}gnp.exe"}),
            "name",
        ),
        (
            json!({"room": "r1", "user": "a", "session": "s", "name": "\u{200B}\u{200B}"}),
            "name",
        ),
        (
            json!({"room": "r1", "user": "\u{FEFF}a", "session": "s", "name": "A"}),
            "user",
        ),
        (
            json!({"room": "r1", "user": "a", "session": "s", "name": "A\u{2028}B"}),
            "name",
        ),
    ] {
        let (status, answer) = send(&app, post_json("/api/presence/heartbeat", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["code"], "invalid_input");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let room_token = presence_room_token(&app).await;
    let (_, list) = send(&app, list_req(&room_token)).await;
    assert_eq!(
        list["users"].as_array().unwrap().len(),
        1,
        "none of them joined"
    );
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_sockets() {
    let presence = Presence::start(PresenceConfig::default().max_sockets_per_address(2));
    let app = app(presence.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let token = presence.room_token("r1").unwrap();
    let mut first = connect(addr, &token, None).await;
    next_json(&mut first).await;
    let mut second = connect(addr, &token, None).await;
    next_json(&mut second).await;
    let url = format!(
        "ws://{addr}/api/presence/subscribe?room_token={}",
        url_encode(&token)
    );
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "too_many_connections");
            assert_eq!(body["limit"], 2);
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // Closing one frees its place.
    first.close(None).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        match tokio_tungstenite::connect_async(url.clone()).await {
            Ok((mut third, _)) => {
                next_json(&mut third).await;
                break;
            }
            Err(_) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn with_an_auth_hook_another_users_session_is_a_403_whatever_the_call() {
    let app = auth_app(Presence::start(PresenceConfig::default()));
    let (status, alice) = beat_as(
        &app,
        "alice",
        json!({"room": "r1", "user": "x", "session": "tab-a", "name": "A"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Bob, holding Alice's leaked token, heartbeats her session: stamped as bob, refused.
    let (status, body) = beat_as(
        &app,
        "bob",
        json!({"room": "r1", "user": "x", "session": "tab-a", "name": "B",
                       "session_token": alice["session_token"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
}

#[tokio::test]
async fn an_auth_hooks_room_rule_keeps_callers_out_of_other_rooms() {
    use leptos_presence::ssr::{Identity, PresenceAuth};
    let auth = PresenceAuth::new(|parts| {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(Identity::new(user))
    })
    .rooms(|caller, room| room.starts_with(&format!("{}-", caller.user_id)));
    let app = Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .with_presence_auth(Presence::start(PresenceConfig::default()), auth);
    let beat = |room: &str| {
        as_user(
            "ann",
            post_json(
                "/api/presence/heartbeat",
                json!({"room": room, "user": "ann", "session": room, "name": "Ann"}),
            ),
        )
    };
    assert_eq!(send(&app, beat("ann-desk")).await.0, StatusCode::OK);
    let (status, body) = send(&app, beat("bob-desk")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
}

#[tokio::test]
async fn an_agent_over_http_shows_its_kind_and_ttl_and_the_auth_hook_decides_who_may() {
    use leptos_presence::ssr::{Identity, PresenceAuth};
    let auth = PresenceAuth::new(|parts| {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(Identity::new(user))
    })
    .agents(|caller, _room| caller.user_id.starts_with("bot:"));
    let app = Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .with_presence_auth(Presence::start(PresenceConfig::default()), auth);
    let agent = |user: &str| {
        as_user(
            user,
            post_json(
                "/api/presence/heartbeat",
                json!({"room": "r1", "user": user, "session": "agent-1", "name": "Summarizer",
                       "kind": "agent", "ttl_ms": 60_000, "state": {"doing": "reading"}}),
            ),
        )
    };
    // A person may not claim to be an agent: 403, and nothing joins.
    let (status, body) = send(&app, agent("ann")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, joined) = send(&app, agent("bot:summary")).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let (_, list) = send(&app, list_req(joined["room_token"].as_str().unwrap())).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["users"][0]["kind"], "agent", "{list}");
    assert_eq!(list["users"][0]["sessions"][0]["kind"], "agent", "{list}");
    // Its TTL is its lifetime.
    let ttl = joined["expires_at"].as_u64().unwrap()
        - list["users"][0]["sessions"][0]["joined_at"]
            .as_u64()
            .unwrap();
    assert_eq!(ttl, 60_000, "{joined}");
    // A person's heartbeat with a TTL is a typed 400.
    let (status, body) = send(
        &app,
        as_user(
            "ann",
            post_json(
                "/api/presence/heartbeat",
                json!({"room": "r1", "user": "ann", "session": "t", "name": "Ann", "ttl_ms": 60_000}),
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "ttl_ms", "{body}");
}

#[tokio::test]
async fn invisible_is_refused_unless_the_app_allows_it_and_then_listed_to_nobody() {
    let invisible = |user: &str, session: &str| {
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": user, "session": session, "name": user, "invisible": true}),
        )
    };
    // Open mode, not allowed (the default): 403, nothing joins.
    let app = app(Presence::start(PresenceConfig::default()));
    let (status, body) = send(&app, invisible("eve", "e1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let ann = join(&app, "r1", "ann", "a1").await;
    let room_token = ann["room_token"].as_str().unwrap();
    let (_, list) = send(&app, list_req(room_token)).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");

    // Open mode, allowed: present, holding a token, listed to nobody.
    let app = self::app(Presence::start(
        PresenceConfig::default().allow_invisible(true),
    ));
    let ann = join(&app, "r1", "ann", "a1").await;
    let (status, eve) = send(&app, invisible("eve", "e1")).await;
    assert_eq!(status, StatusCode::OK, "{eve}");
    let (_, list) = send(&app, list_req(ann["room_token"].as_str().unwrap())).await;
    assert_eq!(user_ids(&list), ["ann"], "{list}");

    // With an auth hook, its rule decides.
    use leptos_presence::ssr::{Identity, PresenceAuth};
    let auth = PresenceAuth::new(|parts| {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(Identity::new(user))
    })
    .invisible(|caller, _room| caller.user_id == "staff");
    let app = Router::new()
        .route("/api/{*fn_name}", any(leptos_axum::handle_server_fns))
        .with_presence_auth(Presence::start(PresenceConfig::default()), auth);
    let (status, body) = send(&app, as_user("eve", invisible("eve", "e1"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, body) = send(&app, as_user("staff", invisible("staff", "s1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---- origins ----

fn with_origin(origin: &str, mut request: Request<Body>) -> Request<Body> {
    let headers = request.headers_mut();
    headers.insert(header::HOST, "presence.example.com".parse().unwrap());
    headers.insert(header::ORIGIN, origin.parse().unwrap());
    request
}

#[tokio::test]
async fn pages_of_other_origins_are_refused_unless_listed() {
    let app = app(Presence::start(PresenceConfig::default()));
    let beat = |session: &str| {
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "a", "session": session, "name": "A"}),
        )
    };
    let (status, body) = send(&app, with_origin("https://evil.example", beat("s1"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("https://evil.example"));
    // The beacon too: a cross-site page cannot end sessions, even with a token.
    let (status, _) = send(
        &app,
        with_origin("https://evil.example", beacon_form(&"0".repeat(64))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The server's own pages (Origin = Host) and requests without Origin pass.
    let (status, body) = send(
        &app,
        with_origin("https://presence.example.com", beat("s2")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(send(&app, beat("s3")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_listed_origin_gets_cors_headers_and_its_preflight_answered() {
    let app = app(Presence::start(
        PresenceConfig::default().allowed_origins(["https://app.example.com".to_string()]),
    ));
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/api/presence/heartbeat")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let response = app
        .clone()
        .oneshot(with_origin("https://app.example.com", preflight))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["vary"], "origin");

    let request = with_origin(
        "https://app.example.com",
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "a", "session": "s", "name": "A"}),
        ),
    );
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Errors carry the headers too, so the page can read why.
    let bad = with_origin(
        "https://app.example.com",
        post_json("/api/presence/heartbeat", json!({"room": ""})),
    );
    let response = app.clone().oneshot(bad).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn a_websocket_from_another_site_is_refused() {
    let presence = Presence::start(PresenceConfig::default());
    let addr = serve(app(presence.clone())).await;
    let token = presence.room_token("r1").unwrap();
    let url = format!(
        "ws://{addr}/api/presence/subscribe?room_token={}",
        url_encode(&token)
    );
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    // Its own page's socket is fine.
    let mut own = url.into_client_request().unwrap();
    own.headers_mut()
        .insert("origin", format!("http://{addr}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(own).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "snapshot");
}

#[tokio::test]
async fn a_summary_subscription_sends_counts_the_first_k_and_me_and_pages_load_everyone() {
    let presence = Presence::start(PresenceConfig::default().summary_window_ms(50));
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    for i in 0..7 {
        join(&app, "big", &format!("u{i}"), &format!("t{i}")).await;
    }
    let me = join(&app, "big", "zed", "tz").await;
    let room_token = me["room_token"].as_str().unwrap();
    let url = format!(
        "ws://{addr}/api/presence/subscribe?room_token={}&session_token={}&view=summary&k=3&me=zed",
        url_encode(room_token),
        me["session_token"].as_str().unwrap()
    );
    let mut socket = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "summary");
    assert_eq!(first["counts"]["users"], 8);
    assert_eq!(first["counts"]["online"], 8);
    let ids: Vec<&str> = first["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u0", "u1", "u2"]);
    let mine = next_json(&mut socket).await;
    assert_eq!(
        (mine["type"].as_str(), mine["user"]["user_id"].as_str()),
        (Some("me"), Some("zed"))
    );
    // A join beyond the first three: the counts alone.
    join(&app, "big", "late", "tl").await;
    let counted = next_json(&mut socket).await;
    assert_eq!(
        (counted["type"].as_str(), &counted["counts"]["users"]),
        (Some("summary"), &json!(9))
    );
    assert!(counted.get("first").is_none(), "{counted}");
    silent_for(&mut socket, 200).await;

    // The whole list, a page at a time, in the room's order.
    let page = |offset: u64| {
        post_json(
            "/api/presence/list_page",
            json!({"room_token": room_token, "offset": offset, "limit": 5}),
        )
    };
    let (status, first_page) = send(&app, page(0)).await;
    assert_eq!(status, StatusCode::OK, "{first_page}");
    assert_eq!(
        (
            &first_page["total"],
            first_page["users"].as_array().unwrap().len()
        ),
        (&json!(9), 5)
    );
    let (_, second_page) = send(&app, page(5)).await;
    let rest: Vec<&str> = second_page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["u5", "u6", "zed", "late"]);
    let (status, body) = send(
        &app,
        post_json(
            "/api/presence/list_page",
            json!({"room_token": "forged.big"}),
        ),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("invalid_room_token")),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_view_or_me_is_a_typed_400_and_no_socket() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let token = url_encode(&presence.room_token("r1").unwrap());
    let long = "x".repeat(200);
    for query in [
        "view=everyone".to_string(),
        format!("view=summary&me={long}"),
    ] {
        let url = format!("ws://{addr}/api/presence/subscribe?room_token={token}&{query}");
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            }
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }
    // A good one still works.
    let url = format!("ws://{addr}/api/presence/subscribe?room_token={token}&view=auto");
    let mut socket = tokio_tungstenite::connect_async(url).await.unwrap().0;
    assert_eq!(next_json(&mut socket).await["type"], "snapshot");
}
