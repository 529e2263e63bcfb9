//! Session hashes that no room lists (data an older version wrote, in a layout this one does
//! not read): a heartbeat of that session id joins anew, its token is refused with the typed
//! error, and its deadline removes it instead of coming due forever.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_session_is_removed_not_stuck_on() {
    let Some(url) = test_support::url() else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let prefix = format!("orphan-test-{}", SessionToken::generate().to_hex());
    // No stall grace: on a loaded machine a scheduler woken late would hold expiry for it, on
    // a manual clock that this test never moves again (it failed that way once in CI).
    let config = PresenceConfig::default()
        .stall_grace_ms(0)
        .room_token_secret(b"orphan test secret".to_vec())
        .redis_prefix(&prefix[..28]);
    let clock = ManualClock::new(T0);
    let store = RedisPresence::connect_with_clock(&url, config, clock.clone())
        .await
        .expect("PRESENCE_TEST_REDIS_URL answers");
    let keys = store.inner.layout.room("r1");
    let mut conn = store.inner.conn.clone();
    // Three sessions as an older version left them: a hash, a token, a due deadline.
    let tokens: Vec<String> = (0..3).map(|_| SessionToken::generate().to_hex()).collect();
    for (i, token) in tokens.iter().enumerate() {
        let sid = format!("s{i}");
        let _: () = redis::pipe()
            .hset_multiple(
                keys.session(&sid),
                &[("user", "ann"), ("tok", token.as_str()), ("exp", "1")],
            )
            .set(store.inner.layout.token(token), format!("r1\n{sid}"))
            .zadd(
                store.inner.layout.deadlines(0),
                keys.session_deadline(&sid),
                1,
            )
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // A heartbeat of s0's id joins anew.
    let joined = store.heartbeat(&req("r1", "ann", "s0")).await.unwrap();
    assert!(joined.joined);
    // s1's token: the typed error, not "unavailable".
    assert!(matches!(
        store
            .update_state(&tokens[1], serde_json::json!(1), None)
            .await,
        Err(PresenceError::InvalidSessionToken)
    ));
    // s2's deadline (and s1's) come due: the scheduler removes them and goes on.
    clock.advance(1_000);
    let started = std::time::Instant::now();
    loop {
        let left: usize = redis::cmd("EXISTS")
            .arg(keys.session("s1"))
            .arg(keys.session("s2"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "orphans left: {left}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued: Vec<String> = redis::cmd("ZRANGE")
        .arg(store.inner.layout.deadlines(0))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        queued,
        [keys.session_deadline("s0")],
        "only the live session is queued"
    );
    let listed = store.list_room("r1").await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].sessions.len(), 1);
}
