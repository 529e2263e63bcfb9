//! A burst of joins to one room through one server, against a real redis-server: every join
//! lands (none is refused as contended), because this server's changes to a room take turns
//! instead of failing each other's guards.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_joins_to_one_room_all_land() {
    let Some(url) = test_support::url() else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let prefix = format!("turns-test-{}", SessionToken::generate().to_hex());
    let config = PresenceConfig::default()
        .room_token_secret(b"turns test secret".to_vec())
        .redis_prefix(&prefix[..28]);
    let store = RedisPresence::connect_with_clock(&url, config, ManualClock::new(T0))
        .await
        .expect("PRESENCE_TEST_REDIS_URL answers");
    const JOINS: usize = 200;
    let joins = (0..JOINS).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut join = req("burst", &format!("u{i}"), &format!("s{i}"));
            join.state = Some(serde_json::json!({"i": i})); // straight to the full heartbeat
            store.heartbeat(&join).await
        })
    });
    let answers = futures_util::future::join_all(joins).await;
    let refused: Vec<String> = answers
        .into_iter()
        .map(|a| a.expect("the task ran"))
        .filter_map(|a| a.err().map(|e| e.to_string()))
        .collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        &refused[..1]
    );
    let listed = store.list_room("burst").await.unwrap();
    assert_eq!(listed.users.len(), JOINS);
    assert_eq!(listed.seq, JOINS as u64, "one change per join");
    assert_eq!(store.inner.turns.rooms(), 0, "no turn is left behind");
}
