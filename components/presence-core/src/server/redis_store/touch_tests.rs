//! The fast path ([`touch.lua`](touch.lua)) against a real redis-server: it extends a live
//! session only for a heartbeat that changes nothing, and leaves every other case to the full
//! heartbeat.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

async fn store() -> Option<(RedisPresence, ManualClock)> {
    let url = test_support::url()?;
    let clock = ManualClock::new(T0);
    let prefix = format!("touch-test-{}", SessionToken::generate().to_hex());
    let config = PresenceConfig::default()
        .room_token_secret(b"touch test secret".to_vec())
        .redis_prefix(&prefix[..28]);
    let store = RedisPresence::connect_with_clock(&url, config, clock.clone())
        .await
        .expect("PRESENCE_TEST_REDIS_URL answers");
    Some((store, clock))
}

async fn exp_of(store: &RedisPresence, room: &str, session: &str) -> Option<String> {
    let mut conn = store.inner.conn.clone();
    redis::cmd("HGET")
        .arg(store.session_key(room, session))
        .arg("exp")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_a_no_change_heartbeat_of_a_live_session_takes_the_fast_path() {
    let Some((store, clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let join = req("r1", "ann", "s1");
    let joined = store.heartbeat(&join).await.unwrap();
    let token = joined.session_token.clone();
    clock.advance(1_000);
    let later = T0 + 1_000 + 25_000;
    let touch = |user: &'static str, name: &'static str, away: bool, token: String| {
        let store = store.clone();
        let mut request = req("r1", user, "s1");
        request.away = away;
        async move {
            store
                .touch(&request, &token, name, T0 + 1_000, later)
                .await
                .unwrap()
        }
    };
    // Another token, another user, a new name or away flag: the full heartbeat decides.
    assert!(!touch("ann", "Name ann", false, SessionToken::generate().to_hex()).await);
    assert!(!touch("bob", "Name ann", false, token.clone()).await);
    assert!(!touch("ann", "Ann B.", false, token.clone()).await);
    assert!(!touch("ann", "Name ann", true, token.clone()).await);
    assert_eq!(
        exp_of(&store, "r1", "s1").await,
        Some(joined.expires_at.to_string())
    );
    // The same fields: extended, nothing else.
    assert!(touch("ann", "Name ann", false, token.clone()).await);
    assert_eq!(exp_of(&store, "r1", "s1").await, Some(later.to_string()));
    // No such session (another session id, or the session ended): the full heartbeat rejoins.
    let mut other = req("r1", "ann", "s2");
    other.session_token = Some(token.clone());
    assert!(!store
        .touch(&other, &token, "Name ann", T0, later)
        .await
        .unwrap());
    store.disconnect(&token, None).await.unwrap();
    assert!(!touch("ann", "Name ann", false, token.clone()).await);
    // And through `heartbeat`: the same session comes back, joined anew.
    let mut again = join.clone();
    again.session_token = Some(token.clone());
    assert!(store.heartbeat(&again).await.unwrap().joined);
}

#[tokio::test]
async fn a_session_whose_deadline_is_not_queued_is_left_to_the_full_heartbeat() {
    let Some((store, _clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let joined = store.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
    let mut conn = store.inner.conn.clone();
    let _: () = redis::cmd("ZREM")
        .arg(format!("{}:dl", store.inner.prefix))
        .arg("s\nr1\ns1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let request = req("r1", "ann", "s1");
    let later = T0 + 30_000;
    assert!(!store
        .touch(&request, &joined.session_token, "Name ann", T0, later)
        .await
        .unwrap());
    // The full heartbeat queues it again.
    let mut again = request.clone();
    again.session_token = Some(joined.session_token.clone());
    store.heartbeat(&again).await.unwrap();
    let queued: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}:dl", store.inner.prefix))
        .arg("s\nr1\ns1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(queued.is_some());
}
