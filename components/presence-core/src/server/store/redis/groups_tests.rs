//! Slot groups ([`keys::Layout`]) against a real redis-server and a real Redis Cluster: a
//! deployment's keys spread over the Cluster's shards, and a session that a stopped server left
//! held by its user (no room has it) is freed before a join is refused.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

async fn store(
    url: Option<String>,
    cluster: bool,
    config: PresenceConfig,
) -> Option<(RedisPresence, ManualClock)> {
    let url = url?;
    let prefix = format!("groups-test-{}", &SessionToken::generate().to_hex()[..16]);
    let config = config
        .room_token_secret(b"groups test secret".to_vec())
        .redis_prefix(prefix)
        .redis_cluster(cluster)
        .redis_slot_groups(16);
    let clock = ManualClock::new(T0);
    let store = RedisPresence::connect_with_clock(&url, config, clock.clone())
        .await
        .expect("the test Redis answers");
    Some((store, clock))
}

#[tokio::test]
async fn on_a_cluster_one_deployments_rooms_spread_over_every_shard() {
    let url = test_support::cluster_url();
    let Some((store, _)) = store(url.clone(), true, PresenceConfig::default()).await else {
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
        let (keys, mut conn) = test_support::keys_on_node(node, &pattern).await;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await.unwrap();
        if !matches!(&role[0], redis::Value::BulkString(b) if b == b"master") {
            continue;
        }
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
async fn a_session_held_that_no_room_has_is_freed_before_a_join_is_refused() {
    for (url, cluster) in [
        (test_support::url(), false),
        (test_support::cluster_url(), true),
    ] {
        let config = PresenceConfig::default().max_rooms_per_user(3);
        let Some((store, clock)) = store(url, cluster, config).await else {
            eprintln!("skipped: set the test Redis URLs to run this");
            continue;
        };
        let first = store.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
        let held = store.inner.layout.user_rooms("ann");
        let mut conn = store.inner.conn.clone();
        // A server stopped after a join held its session and before its room's commit, a
        // minute ago ("gone"); and a join in flight on another server right now ("fly").
        let _: i64 = redis::cmd("HSET")
            .arg(&held)
            .arg("gone\ns9")
            .arg(T0 - 60_000)
            .arg("fly\ns8")
            .arg(T0)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Three rooms held: a join elsewhere frees the stale one, not the one in flight.
        store.heartbeat(&req("r2", "ann", "s2")).await.unwrap();
        let fields = |conn: &mut conn::Conn| {
            let mut conn = conn.clone();
            let held = held.clone();
            async move {
                let mut f: Vec<String> = redis::cmd("HKEYS")
                    .arg(&held)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                f.sort();
                f
            }
        };
        assert_eq!(
            fields(&mut conn).await,
            ["\n", "fly\ns8", "r1\ns1", "r2\ns2"]
        );
        // At the cap with nothing stale: refused, and refusing changes nothing.
        let refused = store.heartbeat(&req("r3", "ann", "s3")).await.unwrap_err();
        assert!(
            matches!(refused, PresenceError::TooManyRooms { limit: 3 }),
            "{refused:?}"
        );
        assert!(store.list_room("r3").await.unwrap().users.is_empty());
        // The join that was in flight never landed: once it is old, it is freed too.
        clock.advance(super::recount::IN_FLIGHT_MS);
        store.heartbeat(&req("r3", "ann", "s3")).await.unwrap();
        assert_eq!(
            fields(&mut conn).await,
            ["\n", "r1\ns1", "r2\ns2", "r3\ns3"]
        );
        // A leave frees its room (in another slot than the user's, mostly) for a join. That
        // join's session is held already, as by a retry of it in flight on another server: the
        // hold stays as it was, so that the other call's undo (if its room's commit fails)
        // cannot free the session this one made.
        store.disconnect(&first.session_token, None).await.unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg(&held)
            .arg("r4\ns4")
            .arg(T0 - 5)
            .query_async(&mut conn)
            .await
            .unwrap();
        store.heartbeat(&req("r4", "ann", "s4")).await.unwrap();
        let since: String = redis::cmd("HGET")
            .arg(&held)
            .arg("r4\ns4")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(since, (T0 - 5).to_string());
        assert_eq!(store.list_user("ann").await.unwrap(), ["r2", "r3", "r4"]);
    }
}
