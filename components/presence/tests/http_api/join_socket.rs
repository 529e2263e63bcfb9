//! A socket that joins as it subscribes (`subscribe?join=1`): its first message is a heartbeat,
//! answered on the socket, then the room as on any subscription.

use super::{app, auth_app, join, next_json, post_json, send, serve, silent_for, Socket};
use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use leptos_presence::ssr::{Presence, PresenceConfig};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Opens `subscribe?join=1&{query}` (as `x-user: {user}` if given) and sends `first`.
async fn join_socket(
    addr: std::net::SocketAddr,
    query: &str,
    user: Option<&str>,
    first: Message,
) -> Socket {
    let url = format!("ws://{addr}/api/presence/subscribe?join=1{query}");
    let mut socket = tokio_tungstenite::connect_async(super::socket_request(url, user))
        .await
        .unwrap()
        .0;
    socket.send(first).await.unwrap();
    socket
}

fn heartbeat(room: &str, user: &str, session: &str) -> Message {
    Message::text(
        json!({"room": room, "user": user, "session": session, "name": user.to_uppercase(),
               "state": {"doing": "reading"}})
        .to_string(),
    )
}

/// The refusal a socket gets: its error, then a close with code 4400.
async fn refusal(socket: &mut Socket) -> Value {
    let answer = next_json(socket).await;
    assert_eq!(answer["type"], "error", "{answer}");
    let close = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a close within 5 s");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::from(4400));
            assert_eq!(
                frame.reason.as_str(),
                answer["error"]["code"].as_str().unwrap()
            );
        }
        other => panic!("expected a close, got {other:?}"),
    }
    answer["error"].clone()
}

#[tokio::test]
async fn a_socket_joins_with_its_first_message_and_holds_the_session_it_joined() {
    let presence = Presence::start(PresenceConfig::default().subscription_grace_ms(300));
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let room_token = presence.room_token("r1").unwrap();
    let mut watcher = super::connect(addr, &room_token, None).await;
    next_json(&mut watcher).await;

    let mut tab = join_socket(addr, "", None, heartbeat("r1", "ann", "tab-1")).await;
    // The heartbeat's answer first, as `POST /heartbeat` gives it...
    let answer = next_json(&mut tab).await;
    assert_eq!(answer["type"], "heartbeat", "{answer}");
    let answer = &answer["answer"];
    assert_eq!(answer["joined"], true);
    assert_eq!(answer["user_id"], "ann");
    assert_eq!(answer["room_token"], room_token.as_str());
    // ...then the room, with this session in it and its state.
    let snapshot = next_json(&mut tab).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["users"][0]["sessions"][0]["session_id"], "tab-1");
    assert_eq!(
        snapshot["users"][0]["sessions"][0]["state"],
        json!({"doing": "reading"})
    );
    let event = next_json(&mut watcher).await;
    assert_eq!(
        (event["type"].as_str(), event["session_id"].as_str()),
        (Some("joined"), Some("tab-1"))
    );

    // Renewals go over HTTP with the answer's token, and change nothing.
    let (status, renewed) = send(
        &app,
        post_json(
            "/api/presence/heartbeat",
            json!({"room": "r1", "user": "ann", "session": "tab-1", "name": "ANN",
                   "session_token": answer["session_token"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["joined"], false);
    silent_for(&mut watcher, 200).await;

    // The socket holds the session: closing it ends the session after the grace.
    tab.close(None).await.unwrap();
    drop(tab);
    let event = next_json(&mut watcher).await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("left"), Some("expired"))
    );
}

#[tokio::test]
async fn a_summary_socket_that_joins_follows_its_own_user_unless_it_names_another() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    join(&app, "r1", "bob", "tab-b").await;
    let mut tab = join_socket(
        addr,
        "&view=summary&k=1",
        None,
        heartbeat("r1", "ann", "tab-a"),
    )
    .await;
    assert_eq!(next_json(&mut tab).await["type"], "heartbeat");
    let summary = next_json(&mut tab).await;
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["counts"]["online"], 2);
    // k=1 lists bob only; `me` shows ann, the user the socket joined as.
    let me = next_json(&mut tab).await;
    assert_eq!(me["type"], "me", "{me}");
    assert_eq!(me["user"]["user_id"], "ann");

    let mut other = join_socket(
        addr,
        "&view=summary&k=1&me=bob",
        None,
        heartbeat("r1", "cy", "tab-c"),
    )
    .await;
    assert_eq!(next_json(&mut other).await["type"], "heartbeat");
    assert_eq!(next_json(&mut other).await["type"], "summary");
    let me = next_json(&mut other).await;
    assert_eq!(me["user"]["user_id"], "bob", "{me}");
}

#[tokio::test]
async fn a_refused_heartbeat_is_a_typed_error_on_the_socket_and_changes_nothing() {
    let presence = Presence::start(PresenceConfig::default().max_sessions_per_room(1));
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let room_token = presence.room_token("r1").unwrap();
    let listed = || async {
        let snapshot = presence.list(&room_token).await.unwrap();
        serde_json::to_value(snapshot).unwrap()["users"].clone()
    };

    // Not JSON, not a heartbeat, not text: `bad_request`; a bad field: `invalid_input`.
    for first in [
        Message::text("hello"),
        Message::text(json!({"room": "r1"}).to_string()),
        Message::binary(b"{}".to_vec()),
        Message::text(
            json!({"room": "r1", "user": "a".repeat(129), "session": "t", "name": "A"}).to_string(),
        ),
    ] {
        let mut socket = join_socket(addr, "", None, first).await;
        let error = refusal(&mut socket).await;
        assert!(
            ["bad_request", "invalid_input"].contains(&error["code"].as_str().unwrap()),
            "{error}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    assert_eq!(listed().await, json!([]));

    // The engine's own refusals come the same way: a full room.
    join(&app, "r1", "bob", "tab-b").await;
    let mut socket = join_socket(addr, "", None, heartbeat("r1", "ann", "tab-a")).await;
    assert_eq!(refusal(&mut socket).await["code"], "room_full");
    assert_eq!(listed().await.as_array().unwrap().len(), 1);

    // The query is checked before the upgrade, as any subscription's.
    for query in ["&room_token=x", "&session_token=y", "&view=all"] {
        let request = format!("ws://{addr}/api/presence/subscribe?join=1{query}");
        let refused = tokio_tungstenite::connect_async(request).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}")
            }
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }
    let (status, body) = send(
        &app,
        axum::http::Request::get("/api/presence/subscribe?join=maybe")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("join"), "{body}");
}

#[tokio::test]
async fn with_an_auth_hook_a_socket_joins_as_the_caller_and_only_where_it_may() {
    use leptos_presence::ssr::{Identity, PresenceAuth, PresenceRouterExt};
    let presence = Presence::start(PresenceConfig::default());
    let app = auth_app(presence.clone());
    let addr = serve(app.clone()).await;
    // The identity is the hook's, whatever the heartbeat claims.
    let mut socket = join_socket(addr, "", Some("ann"), heartbeat("r1", "mallory", "tab-1")).await;
    let answer = next_json(&mut socket).await;
    assert_eq!(answer["answer"]["user_id"], "id:ann", "{answer}");
    // An unknown caller is refused before the upgrade, as any subscription (a browser then
    // sends its heartbeat over HTTP, and reads the typed 401 there).
    let request = format!("ws://{addr}/api/presence/subscribe?join=1");
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    // A room the hook keeps the caller out of: forbidden, and nobody joined it.
    let rooms = PresenceAuth::new(|parts| {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(Identity::new(user))
    })
    .rooms(|caller, room| room.starts_with(&format!("{}-", caller.user_id)));
    let app = axum::Router::new()
        .route(
            "/api/{*fn_name}",
            axum::routing::any(leptos_axum::handle_server_fns),
        )
        .with_presence_auth(presence.clone(), rooms);
    let addr = serve(app).await;
    let mut socket = join_socket(addr, "", Some("ann"), heartbeat("bob-room", "ann", "t")).await;
    assert_eq!(refusal(&mut socket).await["code"], "forbidden");
    let room_token = presence.room_token("bob-room").unwrap();
    let listed = presence.list(&room_token).await.unwrap();
    assert!(serde_json::to_value(listed).unwrap()["users"] == json!([]));
}

#[tokio::test]
async fn a_subscription_refused_after_its_heartbeat_was_taken_sends_the_answer_then_closes() {
    let presence = Presence::start(PresenceConfig::default());
    let app = app(presence.clone());
    let addr = serve(app.clone()).await;
    let me = "m".repeat(129);
    let mut socket = join_socket(
        addr,
        &format!("&view=summary&me={me}"),
        None,
        heartbeat("r1", "ann", "tab-a"),
    )
    .await;
    // The session exists: the client has its tokens, and retries the subscription with them.
    let answer = next_json(&mut socket).await;
    assert_eq!(answer["type"], "heartbeat", "{answer}");
    assert_eq!(answer["answer"]["joined"], true);
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            assert_eq!(frame.code, CloseCode::from(4400));
            assert_eq!(frame.reason.as_str(), "invalid_input");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    let token = presence.room_token("r1").unwrap();
    let listed = serde_json::to_value(presence.list(&token).await.unwrap()).unwrap();
    assert_eq!(listed["users"][0]["user_id"], "ann");
}
