//! Slot groups ([`keys::Layout`]) against a real redis-server and a real Redis Cluster: a
//! deployment's keys spread over the Cluster's shards, and a user's count that a stopped server
//! left too high is recounted before a join is refused.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

async fn store(
    url: Option<String>,
    cluster: bool,
    config: PresenceConfig,
) -> Option<RedisPresence> {
    let url = url?;
    let prefix = format!("groups-test-{}", &SessionToken::generate().to_hex()[..16]);
    let config = config
        .room_token_secret(b"groups test secret".to_vec())
        .redis_prefix(prefix)
        .redis_cluster(cluster)
        .redis_slot_groups(16);
    let store = RedisPresence::connect_with_clock(&url, config, ManualClock::new(T0))
        .await
        .expect("the test Redis answers");
    Some(store)
}

#[tokio::test]
async fn on_a_cluster_one_deployments_rooms_spread_over_every_shard() {
    let url = test_support::cluster_url();
    let Some(store) = store(url.clone(), true, PresenceConfig::default()).await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_CLUSTER_URL to run the Cluster's tests");
        return;
    };
    for i in 0..48 {
        store
            .heartbeat(&req(
                &format!("room-{i}"),
                &format!("u{i}"),
                &format!("s{i}"),
            ))
            .await
            .unwrap();
    }
    // Each primary, asked directly, holds some of this deployment's keys.
    let pattern = format!("{{{}:*", store.prefix());
    let mut holding = 0;
    let nodes: Vec<String> = url.unwrap().split(',').map(str::to_string).collect();
    for node in nodes.iter().filter(|n| !n.trim().is_empty()) {
        let mut conn = redis::Client::open(node.trim())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await.unwrap();
        if !matches!(&role[0], redis::Value::BulkString(b) if b == b"master") {
            continue;
        }
        let (_, keys): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(100_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        holding += usize::from(!keys.is_empty());
    }
    assert!(holding >= 3, "keys on {holding} primaries");
    // And every room still reads back whole.
    for i in 0..48 {
        let room = store.list_room(&format!("room-{i}")).await.unwrap();
        assert_eq!(room.users.len(), 1);
    }
}

#[tokio::test]
async fn a_users_count_left_too_high_is_recounted_before_a_join_is_refused() {
    for (url, cluster) in [
        (test_support::url(), false),
        (test_support::cluster_url(), true),
    ] {
        let config = PresenceConfig::default().max_rooms_per_user(2);
        let Some(store) = store(url, cluster, config).await else {
            eprintln!("skipped: set the test Redis URLs to run this");
            continue;
        };
        let first = store.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
        // A server stopped after a join's count and before its room's commit: "gone" counts
        // one session that no room holds.
        let mut conn = store.inner.conn.clone();
        let _: i64 = redis::cmd("HINCRBY")
            .arg(store.inner.layout.user_rooms("ann"))
            .arg("gone")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Two rooms counted: a third would be refused; a second real one is not.
        store.heartbeat(&req("r2", "ann", "s2")).await.unwrap();
        let rooms: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(store.inner.layout.user_rooms("ann"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(rooms.get("gone"), None, "{rooms:?}");
        assert_eq!(rooms.get("r1").map(String::as_str), Some("1"));
        assert_eq!(rooms.get("r2").map(String::as_str), Some("1"));
        // The cap itself still holds, and refusing changes nothing.
        let refused = store.heartbeat(&req("r3", "ann", "s3")).await.unwrap_err();
        assert!(
            matches!(refused, PresenceError::TooManyRooms { limit: 2 }),
            "{refused:?}"
        );
        assert!(store.list_room("r3").await.unwrap().users.is_empty());
        // A leave in another slot than the user's frees its room for a join.
        store.disconnect(&first.session_token, None).await.unwrap();
        store.heartbeat(&req("r3", "ann", "s3")).await.unwrap();
    }
}
