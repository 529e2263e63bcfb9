//! One behaviour suite, run against every store: the in-memory one always, the Redis one when
//! `PRESENCE_TEST_REDIS_URL` names a running Redis (the test command starts one; set
//! `PRESENCE_REQUIRE_REDIS=1` to make its absence a failure rather than a skip). Each Redis run
//! uses its own key prefix, so runs in parallel do not meet. Time is a manual clock: expiry
//! tests take milliseconds.

use super::*;
use crate::error::{Field, PresenceError};
use crate::wire::{HeartbeatRequest, HeartbeatResponse, LeaveReason, RoomMessage, RoomSnapshot};
use crate::RoomView;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use crate::server::test_support::{req, T0};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
    /// The Redis store on one Redis, its keys in 8 slot groups.
    #[cfg(feature = "redis")]
    RedisGroups,
    /// The Redis store on a Redis Cluster, its keys in 16 slot groups (over every shard).
    #[cfg(feature = "redis")]
    RedisCluster,
}

impl Kind {
    /// How many slot groups the store's Redis keys are spread over (1: not spread).
    fn slot_groups(self) -> u32 {
        match self {
            #[cfg(feature = "redis")]
            Kind::RedisGroups => 8,
            #[cfg(feature = "redis")]
            Kind::RedisCluster => 16,
            _ => 1,
        }
    }

    /// Whether `token` is `proposed` as this store adopts it: with slot groups, its first 4
    /// hex digits may have moved into the room's group (`store::redis::keys::Layout`).
    fn adopted(self, token: &str, proposed: &str) -> bool {
        if self.slot_groups() == 1 {
            token == proposed
        } else {
            token.len() == 64 && token[4..] == proposed[4..]
        }
    }
}

struct Harness {
    presence: Presence,
    clock: ManualClock,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    config: PresenceConfig,
}

fn base_config() -> PresenceConfig {
    PresenceConfig {
        room_token_secret: Some(b"behaviour test secret".to_vec()),
        ..PresenceConfig::default()
    }
}

/// Opens a fresh store of `kind`, or `None` when that kind cannot run here (Redis not given).
async fn open(kind: Kind, config: PresenceConfig) -> Option<Harness> {
    let clock = ManualClock::new(T0);
    let config = match kind {
        Kind::Memory => config,
        #[cfg(feature = "redis")]
        Kind::Redis | Kind::RedisGroups | Kind::RedisCluster => {
            let (url, variable) = if kind != Kind::RedisCluster {
                (store::redis::test_support::url(), "PRESENCE_TEST_REDIS_URL")
            } else {
                (
                    store::redis::test_support::cluster_url(),
                    "PRESENCE_TEST_REDIS_CLUSTER_URL",
                )
            };
            let Some(url) = url else {
                assert!(
                    std::env::var_os("PRESENCE_REQUIRE_REDIS").is_none(),
                    "PRESENCE_REQUIRE_REDIS is set but {variable} is not"
                );
                eprintln!("skipped: set {variable} to run the Redis store's suite there");
                return None;
            };
            let token = SessionToken::generate().to_hex();
            PresenceConfig {
                redis_url: Some(url),
                redis_prefix: format!("test-{}", &token[..16]),
                redis_cluster: kind == Kind::RedisCluster,
                redis_slot_groups: kind.slot_groups(),
                ..config
            }
        }
    };
    let presence = Presence::open_with_clock(config.clone(), clock.clone())
        .await
        .expect("the store opens");
    Some(Harness {
        presence,
        clock,
        config,
    })
}

impl Harness {
    /// Another server on the same store and clock (Redis only).
    #[cfg(feature = "redis")]
    async fn peer(&self) -> Presence {
        Presence::open_with_clock(self.config.clone(), self.clock.clone())
            .await
            .expect("a second server opens")
    }

    async fn join(&self, room: &str, user: &str, session: &str) -> HeartbeatResponse {
        self.presence
            .heartbeat(&req(room, user, session))
            .await
            .expect("join")
    }

    /// A subscription whose snapshot has been read: what it yields next is a change.
    async fn watch(&self, room_token: &str) -> Subscription {
        let mut sub = self.presence.subscribe(room_token, None).await.unwrap();
        assert!(matches!(next(&mut sub).await, RoomMessage::Snapshot(_)));
        sub
    }

    async fn snapshot(&self, room: &str) -> RoomSnapshot {
        self.presence.list_room(room).await.expect("list")
    }

    /// Moves the clock and gives the scheduler (and, with Redis, the round trips) time to act.
    async fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        settle().await;
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

fn again(mut r: HeartbeatRequest, joined: &HeartbeatResponse) -> HeartbeatRequest {
    r.session_token = Some(joined.session_token.clone());
    r
}

async fn next(sub: &mut Subscription) -> RoomMessage {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message within 5 s")
        .message()
        .clone()
}

async fn nothing_within(sub: &mut Subscription, ms: u64) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(ms), sub.next()).await {
        panic!("expected nothing, got {:?}", m.message());
    }
}

fn kind_of(m: &RoomMessage) -> &'static str {
    match m {
        RoomMessage::Snapshot(_) => "snapshot",
        RoomMessage::Joined { .. } => "joined",
        RoomMessage::Left { .. } => "left",
        RoomMessage::Updated { .. } => "updated",
        RoomMessage::Removed { .. } => "removed",
        RoomMessage::Summary(_) => "summary",
        RoomMessage::Me { .. } => "me",
    }
}

fn users(s: &RoomSnapshot) -> Vec<(String, bool)> {
    s.users
        .iter()
        .map(|u| (u.user_id.clone(), u.online))
        .collect()
}

/// Runs each named `async fn(Kind)` once per store.
macro_rules! behaviour {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Memory).await
            })*
        }
        #[cfg(feature = "redis")]
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Redis).await
            })*
        }
        #[cfg(feature = "redis")]
        mod redis_groups {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::RedisGroups).await
            })*
        }
        #[cfg(feature = "redis")]
        mod redis_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::RedisCluster).await
            })*
        }
    };
}

behaviour!(
    join_then_disconnect_is_one_joined_then_one_left,
    a_heartbeat_that_changes_nothing_publishes_nothing,
    a_change_is_one_updated_never_left_and_joined,
    one_user_two_sessions_stays_online_until_both_end,
    sessions_expire_when_the_clock_passes_their_deadline_and_not_before,
    a_deadline_earlier_than_the_one_slept_on_wakes_the_scheduler,
    order_is_online_by_join_then_offline_by_recency,
    offline_users_are_bounded_in_count_and_time,
    token_misuse_is_a_typed_error_and_changes_nothing,
    validation_and_caps_are_typed_errors,
    acting_as_a_user_reaches_only_that_users_sessions,
    admin_removals_notify_and_invalidate_tokens,
    list_needs_a_genuine_room_token,
    dropping_a_session_subscription_ends_it_after_the_grace,
    a_slow_subscriber_is_resynced_and_does_not_hold_back_others,
    what_piled_up_is_taken_without_waiting_and_a_lag_found_so_still_resyncs,
    subscribers_between_changes_share_one_snapshot,
    a_snapshot_plus_the_diffs_after_it_equals_a_later_snapshot,
    server_side_code_sees_every_rooms_changes_in_order,
    a_join_adopts_the_token_the_client_proposed_so_its_retry_finds_the_session,
    a_pause_does_not_end_sessions_whose_heartbeats_were_waiting,
    names_are_stored_trimmed_and_an_untrimmed_repeat_changes_nothing,
    readers_between_changes_share_one_list,
    the_deepest_allowed_state_round_trips_and_a_deeper_one_is_refused,
    deadlines_in_one_millisecond_are_handled_in_id_order,
    the_offline_cap_drops_the_last_in_room_order_among_ties,
    a_goodbye_is_taken_back_by_a_heartbeat_and_otherwise_ends_the_session_after_the_leave_grace,
    a_state_with_floats_reads_back_exactly_and_the_same_again_changes_nothing,
    idle_is_one_updated_each_way_and_an_idle_tabs_heartbeats_change_nothing,
    server_side_code_is_told_when_a_room_is_occupied_and_vacated,
    many_users_status_at_once_online_anywhere_or_last_seen,
    agents_show_their_kind_skip_the_user_caps_and_expire_after_their_ttl,
    an_agent_handle_keeps_itself_present_and_leaves_when_dropped,
    an_invisible_session_is_in_no_read_path_and_showing_it_is_one_joined,
    an_offline_user_present_invisibly_is_listed_as_if_it_were_not_there,
    the_offline_cap_drops_an_offline_user_present_invisibly_as_any_other,
);

async fn join_then_disconnect_is_one_joined_then_one_left(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let mut sub = h
        .presence
        .subscribe(&h.presence.room_token("r1").unwrap(), None)
        .await
        .unwrap();
    assert!(matches!(next(&mut sub).await, RoomMessage::Snapshot(s) if s.users.is_empty()));
    let ann = h.join("r1", "ann", "s1").await;
    assert!(ann.joined);
    assert_eq!(ann.user_id, "ann");
    assert_eq!(ann.expires_at, T0 + 25_000);
    match next(&mut sub).await {
        RoomMessage::Joined {
            seq,
            session_id,
            user,
            session,
        } => {
            assert_eq!((seq, session_id.as_str()), (1, "s1"));
            assert!(user.online && !user.away);
            assert_eq!((session.session_id.as_str(), session.joined_at), ("s1", T0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.presence.list_user("ann").await.unwrap(), vec!["r1"]);
    h.clock.advance(1_000);
    h.presence.disconnect(&ann.session_token).await.unwrap();
    match next(&mut sub).await {
        RoomMessage::Left {
            seq, reason, user, ..
        } => {
            assert_eq!((seq, reason), (2, LeaveReason::Disconnected));
            assert!(!user.online);
            assert_eq!(user.last_seen, Some(T0 + 1_000));
        }
        other => panic!("{other:?}"),
    }
    let snapshot = h.snapshot("r1").await;
    assert_eq!(users(&snapshot), vec![("ann".into(), false)]);
    assert!(h.presence.list_user("ann").await.unwrap().is_empty());
    assert_eq!(
        h.presence.disconnect(&ann.session_token).await,
        Err(PresenceError::InvalidSessionToken),
        "a token dies with its session"
    );
}

async fn a_heartbeat_that_changes_nothing_publishes_nothing(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut sub = h.watch(&ann.room_token).await;
    for _ in 0..10 {
        h.clock.advance(5_000);
        let beat = h
            .presence
            .heartbeat(&again(req("r1", "ann", "s1"), &ann))
            .await
            .unwrap();
        assert!(!beat.joined);
        assert_eq!(beat.session_token, ann.session_token);
    }
    nothing_within(&mut sub, 150).await;
    // 50 s passed, well over the 25 s timeout: the heartbeats kept the session.
    h.advance(0).await;
    assert_eq!(users(&h.snapshot("r1").await), vec![("ann".into(), true)]);
    assert_eq!(h.snapshot("r1").await.seq, 1);
}

async fn a_change_is_one_updated_never_left_and_joined(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut sub = h.watch(&ann.room_token).await;

    let mut renamed = again(req("r1", "ann", "s1"), &ann);
    renamed.name = "Ann B.".into();
    renamed.state = Some(json!({"section": "intro", "typing": false}));
    h.presence.heartbeat(&renamed).await.unwrap();
    match next(&mut sub).await {
        RoomMessage::Updated {
            seq, user, session, ..
        } => {
            assert_eq!(seq, 2);
            assert_eq!(user.name, "Ann B.");
            assert_eq!(
                session.state,
                Some(json!({"section": "intro", "typing": false}))
            );
        }
        other => panic!("{other:?}"),
    }
    let typing = json!({"section": "intro", "typing": true});
    for _ in 0..2 {
        // The second time the same state changes nothing.
        h.presence
            .update_state(&ann.session_token, typing.clone())
            .await
            .unwrap();
    }
    assert!(matches!(
        next(&mut sub).await,
        RoomMessage::Updated { seq: 3, .. }
    ));
    h.presence.set_away(&ann.session_token, true).await.unwrap();
    match next(&mut sub).await {
        RoomMessage::Updated { seq, user, .. } => {
            assert_eq!(seq, 4);
            assert!(user.online && user.away, "away is shown, not dropped");
        }
        other => panic!("{other:?}"),
    }
    h.presence
        .update_state(&ann.session_token, serde_json::Value::Null)
        .await
        .unwrap();
    match next(&mut sub).await {
        RoomMessage::Updated { session, .. } => assert_eq!(session.state, None),
        other => panic!("{other:?}"),
    }
    nothing_within(&mut sub, 100).await;
}

async fn one_user_two_sessions_stays_online_until_both_end(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let tab1 = h.join("r1", "ann", "s1").await;
    h.clock.advance(10);
    let tab2 = h.join("r1", "ann", "s2").await;
    assert!(tab2.joined);
    let snapshot = h.snapshot("r1").await;
    assert_eq!(snapshot.users.len(), 1, "one face for two tabs");
    let sessions: Vec<&str> = snapshot.users[0]
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(sessions, ["s1", "s2"], "sessions in join order");
    h.presence
        .set_away(&tab1.session_token, true)
        .await
        .unwrap();
    assert!(
        !h.snapshot("r1").await.users[0].away,
        "away only when every tab is"
    );
    h.presence.disconnect(&tab1.session_token).await.unwrap();
    assert_eq!(users(&h.snapshot("r1").await), vec![("ann".into(), true)]);
    h.presence.disconnect(&tab2.session_token).await.unwrap();
    assert_eq!(users(&h.snapshot("r1").await), vec![("ann".into(), false)]);
}

async fn sessions_expire_when_the_clock_passes_their_deadline_and_not_before(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    h.clock.advance(1_000);
    let mut slow = req("r1", "bob", "s2");
    slow.interval_ms = Some(20_000);
    h.presence.heartbeat(&slow).await.unwrap();
    let mut sub = h.watch(&ann.room_token).await;

    h.advance(23_999).await; // T0 + 24,999: ann's deadline is T0 + 25,000
    nothing_within(&mut sub, 100).await;
    h.clock.advance(1);
    match next(&mut sub).await {
        RoomMessage::Left { reason, user, .. } => {
            assert_eq!(reason, LeaveReason::Expired);
            assert_eq!(user.user_id, "ann");
            assert_eq!(user.last_seen, Some(T0), "last seen at the last heartbeat");
        }
        other => panic!("{other:?}"),
    }
    h.advance(26_000).await; // T0 + 51,000 = bob's deadline
    match next(&mut sub).await {
        RoomMessage::Left { user, .. } => assert_eq!(user.user_id, "bob"),
        other => panic!("{other:?}"),
    }
    nothing_within(&mut sub, 100).await;
    assert_eq!(
        h.presence.disconnect(&ann.session_token).await,
        Err(PresenceError::InvalidSessionToken)
    );
}

async fn a_deadline_earlier_than_the_one_slept_on_wakes_the_scheduler(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let mut slow = req("r1", "slow", "s1");
    slow.interval_ms = Some(300_000);
    let hb = h.presence.heartbeat(&slow).await.unwrap();
    settle().await; // the scheduler now sleeps until +750 s
    let mut fast = req("r1", "fast", "s2");
    fast.interval_ms = Some(1_000);
    h.presence.heartbeat(&fast).await.unwrap();
    let mut sub = h.watch(&hb.room_token).await;
    settle().await;
    h.clock.advance(2_500);
    match next(&mut sub).await {
        RoomMessage::Left { user, .. } => assert_eq!(user.user_id, "fast"),
        other => panic!("{other:?}"),
    }
}

async fn order_is_online_by_join_then_offline_by_recency(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let mut tokens = Vec::new();
    for user in ["a", "b", "c", "d"] {
        tokens.push(h.join("r1", user, &format!("s-{user}")).await);
        h.clock.advance(10);
    }
    let order =
        |s: &RoomSnapshot| -> Vec<String> { s.users.iter().map(|u| u.user_id.clone()).collect() };
    assert_eq!(order(&h.snapshot("r1").await), ["a", "b", "c", "d"]);
    // b leaves, then d: offline ones follow, most recent first.
    h.presence
        .disconnect(&tokens[1].session_token)
        .await
        .unwrap();
    h.clock.advance(10);
    h.presence
        .disconnect(&tokens[3].session_token)
        .await
        .unwrap();
    assert_eq!(order(&h.snapshot("r1").await), ["a", "c", "d", "b"]);
    // A heartbeat or a state change moves nobody.
    h.presence
        .update_state(&tokens[0].session_token, json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(order(&h.snapshot("r1").await), ["a", "c", "d", "b"]);
    // b comes back: after those online.
    h.join("r1", "b", "s-b2").await;
    assert_eq!(order(&h.snapshot("r1").await), ["a", "c", "b", "d"]);
}

async fn offline_users_are_bounded_in_count_and_time(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            max_offline_users_per_room: 2,
            offline_retention_ms: 60_000,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    for user in ["a", "b", "c"] {
        let joined = h.join("r1", user, user).await;
        h.clock.advance(10);
        h.presence.disconnect(&joined.session_token).await.unwrap();
    }
    // Three went offline; the cap keeps the two most recent.
    assert_eq!(
        users(&h.snapshot("r1").await),
        vec![("c".into(), false), ("b".into(), false)]
    );
    h.advance(59_985).await; // b left at T0 + 20, c at T0 + 30: b's retention ends at T0 + 60,020
    assert_eq!(h.snapshot("r1").await.users.len(), 2);
    h.advance(10).await;
    assert_eq!(users(&h.snapshot("r1").await), vec![("c".into(), false)]);
    h.advance(20).await;
    assert!(h.snapshot("r1").await.users.is_empty());
}

async fn token_misuse_is_a_typed_error_and_changes_nothing(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let before = h.snapshot("r1").await;
    let forged = "0".repeat(64);
    assert_eq!(
        h.presence.disconnect(&forged).await,
        Err(PresenceError::InvalidSessionToken)
    );
    assert_eq!(
        h.presence.update_state("not hex", json!(1)).await,
        Err(PresenceError::InvalidSessionToken)
    );
    // Someone else heartbeating ann's session id without its token.
    let hijack = h.presence.heartbeat(&req("r1", "ann", "s1")).await;
    assert_eq!(
        hijack.map(|_| ()),
        Err(PresenceError::SessionTokenMismatch {
            session: "s1".into()
        })
    );
    let mut wrong = req("r1", "ann", "s1");
    wrong.session_token = Some(forged.clone());
    assert!(matches!(
        h.presence.heartbeat(&wrong).await,
        Err(PresenceError::SessionTokenMismatch { .. })
    ));
    wrong.session_token = Some("zz".into());
    assert!(matches!(
        h.presence.heartbeat(&wrong).await,
        Err(PresenceError::InvalidInput {
            field: Field::Token,
            ..
        })
    ));
    // The right token under another user id.
    let other_user = again(req("r1", "eve", "s1"), &ann);
    assert!(matches!(
        h.presence.heartbeat(&other_user).await,
        Err(PresenceError::Forbidden { .. })
    ));
    assert_eq!(h.snapshot("r1").await, before, "nothing changed");
    // A stale token (the server forgot the session) is not an error: a new session is made.
    let mut stale = req("r1", "bob", "s2");
    stale.session_token = Some(forged);
    assert!(h.presence.heartbeat(&stale).await.unwrap().joined);
}

async fn validation_and_caps_are_typed_errors(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            max_sessions_per_room: 2,
            max_rooms_per_user: 2,
            max_sessions_per_user: 3,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let long = "x".repeat(129);
    for (request, field) in [
        (req("", "u", "s"), Field::Room),
        (req("r", &long, "s"), Field::User),
        (req("r", "u", "a\u{7}b"), Field::Session),
        (
            HeartbeatRequest {
                name: "n".repeat(65),
                ..req("r", "u", "s")
            },
            Field::Name,
        ),
        (
            HeartbeatRequest {
                state: Some(json!({"big": "y".repeat(5000)})),
                ..req("r", "u", "s")
            },
            Field::State,
        ),
        (
            // A person's session lives by its interval, never by a TTL.
            HeartbeatRequest {
                ttl_ms: Some(60_000),
                ..req("r", "u", "s")
            },
            Field::Ttl,
        ),
    ] {
        match h.presence.heartbeat(&request).await {
            Err(PresenceError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(h.snapshot("r").await.users.is_empty(), "nothing was stored");

    h.join("full", "a", "a1").await;
    h.join("full", "b", "b1").await;
    assert_eq!(
        h.presence
            .heartbeat(&req("full", "c", "c1"))
            .await
            .map(|_| ()),
        Err(PresenceError::RoomFull {
            room: "full".into(),
            limit: 2
        })
    );
    h.join("other", "c", "c1").await; // others still join elsewhere

    h.join("r1", "u", "u1").await;
    h.join("r2", "u", "u2").await;
    assert_eq!(
        h.presence
            .heartbeat(&req("r3", "u", "u3"))
            .await
            .map(|_| ()),
        Err(PresenceError::TooManyRooms { limit: 2 })
    );
    h.join("r2", "u", "u3").await;
    assert_eq!(
        h.presence
            .heartbeat(&req("r1", "u", "u4"))
            .await
            .map(|_| ()),
        Err(PresenceError::TooManySessions { limit: 3 })
    );
    assert_eq!(h.presence.list_user("u").await.unwrap(), vec!["r1", "r2"]);
}

async fn acting_as_a_user_reaches_only_that_users_sessions(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let forbidden =
        |r: Result<(), PresenceError>| matches!(r, Err(PresenceError::Forbidden { .. }));
    assert!(forbidden(
        h.presence
            .update_state_as("eve", &ann.session_token, json!(1))
            .await
    ));
    assert!(forbidden(
        h.presence.disconnect_as("eve", &ann.session_token).await
    ));
    assert!(matches!(
        h.presence
            .subscribe_as("eve", &ann.room_token, Some(&ann.session_token))
            .await,
        Err(PresenceError::Forbidden { .. })
    ));
    assert_eq!(users(&h.snapshot("r1").await), vec![("ann".into(), true)]);
    h.presence
        .update_state_as("ann", &ann.session_token, json!(1))
        .await
        .unwrap();
    h.presence
        .disconnect_as("ann", &ann.session_token)
        .await
        .unwrap();
    assert_eq!(users(&h.snapshot("r1").await), vec![("ann".into(), false)]);
}

async fn admin_removals_notify_and_invalidate_tokens(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let bob = h.join("r1", "bob", "s2").await;
    let mut sub = h.watch(&ann.room_token).await;
    assert!(h.presence.remove_room_user("r1", "ann").await.unwrap());
    assert!(!h.presence.remove_room_user("r1", "ann").await.unwrap());
    match next(&mut sub).await {
        RoomMessage::Removed { user_id, .. } => assert_eq!(user_id, "ann"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.presence.disconnect(&ann.session_token).await,
        Err(PresenceError::InvalidSessionToken)
    );
    assert!(h.presence.list_user("ann").await.unwrap().is_empty());
    assert!(h.presence.remove_room("r1").await.unwrap());
    assert!(matches!(next(&mut sub).await, RoomMessage::Removed { .. }));
    assert!(h.snapshot("r1").await.users.is_empty());
    assert!(!h.presence.remove_room("r1").await.unwrap());
    assert_eq!(
        h.presence.set_away(&bob.session_token, true).await,
        Err(PresenceError::InvalidSessionToken)
    );
}

async fn list_needs_a_genuine_room_token(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    assert_eq!(
        h.presence.list(&ann.room_token).await.unwrap().users.len(),
        1
    );
    let forged = format!("{}.r1", "0".repeat(32));
    assert_eq!(
        h.presence.list(&forged).await.map(|_| ()),
        Err(PresenceError::InvalidRoomToken)
    );
    let other_room = ann.room_token.replace(".r1", ".r2");
    assert_eq!(
        h.presence.list(&other_room).await.map(|_| ()),
        Err(PresenceError::InvalidRoomToken)
    );
    assert!(matches!(
        h.presence.subscribe(&forged, None).await,
        Err(PresenceError::InvalidRoomToken)
    ));
    let stranger = Presence::start(PresenceConfig {
        room_token_secret: Some(b"another secret entirely".to_vec()),
        ..PresenceConfig::default()
    });
    assert_eq!(
        stranger.list(&ann.room_token).await.map(|_| ()),
        Err(PresenceError::InvalidRoomToken),
        "a server with another key refuses it"
    );
}

async fn dropping_a_session_subscription_ends_it_after_the_grace(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            subscription_grace_ms: 2_000,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let tab = h
        .presence
        .subscribe(&ann.room_token, Some(&ann.session_token))
        .await
        .unwrap();
    let mut watcher = h.watch(&ann.room_token).await;
    drop(tab);
    settle().await;
    h.advance(1_999).await;
    nothing_within(&mut watcher, 100).await;
    h.clock.advance(1);
    assert!(matches!(next(&mut watcher).await, RoomMessage::Left { .. }));

    // A tab that reconnects within the grace keeps its session.
    let bob = h.join("r1", "bob", "s2").await;
    assert!(matches!(
        next(&mut watcher).await,
        RoomMessage::Joined { .. }
    ));
    let first = h
        .presence
        .subscribe(&bob.room_token, Some(&bob.session_token))
        .await
        .unwrap();
    drop(first);
    settle().await;
    h.advance(1_000).await;
    let _second = h
        .presence
        .subscribe(&bob.room_token, Some(&bob.session_token))
        .await
        .unwrap();
    settle().await;
    h.advance(5_000).await;
    nothing_within(&mut watcher, 100).await;
    assert!(h
        .snapshot("r1")
        .await
        .users
        .iter()
        .any(|u| u.user_id == "bob" && u.online));
}

/// A harness whose subscribers may fall only 4 messages behind, and two subscribers of room r1.
async fn two_subscribers_with_small_buffers(
    kind: Kind,
) -> Option<(Harness, Subscription, Subscription)> {
    let config = PresenceConfig {
        subscriber_buffer: 4,
        ..base_config()
    };
    let h = open(kind, config).await?;
    let token = h.presence.room_token("r1").unwrap();
    let a = h.presence.subscribe(&token, None).await.unwrap();
    let b = h.presence.subscribe(&token, None).await.unwrap();
    Some((h, a, b))
}

async fn a_slow_subscriber_is_resynced_and_does_not_hold_back_others(kind: Kind) {
    let Some((h, mut slow, mut fast)) = two_subscribers_with_small_buffers(kind).await else {
        return;
    };
    next(&mut slow).await;
    next(&mut fast).await;
    for i in 0..20 {
        h.join("r1", &format!("u{i}"), &format!("s{i}")).await;
        assert!(matches!(next(&mut fast).await, RoomMessage::Joined { .. }));
    }
    // The slow one read nothing while 20 changes happened: it gets a snapshot, current to seq 20.
    match next(&mut slow).await {
        RoomMessage::Snapshot(s) => {
            assert_eq!(s.seq, 20);
            assert_eq!(s.users.len(), 20);
        }
        other => panic!("{other:?}"),
    }
    h.join("r1", "late", "s-late").await;
    assert!(matches!(
        next(&mut slow).await,
        RoomMessage::Joined { seq: 21, .. }
    ));
}

async fn what_piled_up_is_taken_without_waiting_and_a_lag_found_so_still_resyncs(kind: Kind) {
    let Some((h, mut sub, mut witness)) = two_subscribers_with_small_buffers(kind).await else {
        return;
    };
    next(&mut witness).await;
    let taken = |sub: &mut Subscription| -> Vec<RoomMessage> {
        std::iter::from_fn(|| sub.try_next())
            .map(|m| m.message().clone())
            .collect()
    };
    // The snapshot is there from the start, and nothing after it.
    assert!(matches!(&taken(&mut sub)[..], [RoomMessage::Snapshot(_)]));
    // Three joins: once another subscriber of the room has them, so has this one's channel.
    for i in 0..3 {
        h.join("r1", &format!("u{i}"), &format!("s{i}")).await;
        next(&mut witness).await;
    }
    let seqs: Vec<u64> = taken(&mut sub).iter().map(RoomMessage::seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    // Behind by more than its buffer: nothing is taken, and `next` brings a fresh snapshot.
    for i in 3..20 {
        h.join("r1", &format!("u{i}"), &format!("s{i}")).await;
        next(&mut witness).await;
    }
    assert!(sub.try_next().is_none());
    match next(&mut sub).await {
        RoomMessage::Snapshot(s) => assert_eq!((s.seq, s.users.len()), (20, 20)),
        other => panic!("{other:?}"),
    }
    h.join("r1", "late", "s-late").await;
    assert!(matches!(
        next(&mut sub).await,
        RoomMessage::Joined { seq: 21, .. }
    ));
}

async fn subscribers_between_changes_share_one_snapshot(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut a = h.presence.subscribe(&ann.room_token, None).await.unwrap();
    let mut b = h.presence.subscribe(&ann.room_token, None).await.unwrap();
    let (first_a, first_b) = (a.next().await, b.next().await);
    assert!(Arc::ptr_eq(&first_a, &first_b), "one snapshot for both");
    h.join("r1", "bob", "s2").await;
    // Earlier subscribers get the change as a diff, not a snapshot.
    assert!(matches!(
        next(&mut a).await,
        RoomMessage::Joined { seq: 2, .. }
    ));
    let mut c = h.presence.subscribe(&ann.room_token, None).await.unwrap();
    let first_c = c.next().await;
    assert!(!Arc::ptr_eq(&first_a, &first_c), "a change makes a new one");
    match first_c.message() {
        RoomMessage::Snapshot(s) => assert_eq!((s.seq, s.users.len()), (2, 2)),
        other => panic!("{other:?}"),
    }
}

async fn a_snapshot_plus_the_diffs_after_it_equals_a_later_snapshot(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut sub = h.presence.subscribe(&ann.room_token, None).await.unwrap();
    let mut view = RoomView::default();
    view.apply(next(&mut sub).await);
    let bob = h.join("r1", "bob", "s2").await;
    h.join("r1", "ann", "s3").await;
    h.presence
        .update_state(&bob.session_token, json!({"typing": true}))
        .await
        .unwrap();
    h.presence.set_away(&ann.session_token, true).await.unwrap();
    h.presence.disconnect(&bob.session_token).await.unwrap();
    h.presence.remove_room_user("r1", "bob").await.unwrap();
    let mut seen = Vec::new();
    while view.seq() < 7 {
        let m = next(&mut sub).await;
        seen.push(kind_of(&m));
        view.apply(m);
    }
    assert_eq!(
        seen,
        ["joined", "joined", "updated", "updated", "left", "removed"]
    );
    assert_eq!(view.users(), h.snapshot("r1").await.users.as_slice());
}

async fn server_side_code_sees_every_rooms_changes_in_order(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let mut changes = h.presence.changes();
    let before = h.join("r0", "early", "s0").await;
    let ann = h.join("r1", "ann", "s1").await;
    h.join("r2", "bob", "s2").await;
    h.presence
        .update_state(&ann.session_token, json!({"typing": true}))
        .await
        .unwrap();
    h.presence.disconnect(&ann.session_token).await.unwrap();
    h.presence.disconnect(&before.session_token).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("the engine is alive");
        let m = change.message.message();
        seen.push((change.room.to_string(), kind_of(m), m.seq()));
    }
    let expected = [
        ("r0", "joined", 1),
        ("r1", "joined", 1),
        ("r2", "joined", 1),
        ("r1", "updated", 2),
        ("r1", "left", 3),
        ("r0", "left", 2),
    ];
    let expected: Vec<(String, &str, u64)> = expected
        .iter()
        .map(|(r, k, s)| (r.to_string(), *k, *s))
        .collect();
    assert_in_order(kind, &seen, &expected, |c| &c.0);
    assert_eq!(changes.missed(), 0);
}

/// `changes()` yielded `expected`: in that order; with rooms in several slots (on a Cluster,
/// on several nodes), each room's in order, two rooms' perhaps interleaved (as documented).
fn assert_in_order<T: PartialEq + std::fmt::Debug>(
    kind: Kind,
    seen: &[T],
    expected: &[T],
    room: impl Fn(&T) -> &String,
) {
    if kind.slot_groups() == 1 {
        assert_eq!(seen, expected);
        return;
    }
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for r in expected.iter().map(&room) {
        let in_seen: Vec<&T> = seen.iter().filter(|c| room(c) == r).collect();
        let in_expected: Vec<&T> = expected.iter().filter(|c| room(c) == r).collect();
        assert_eq!(in_seen, in_expected, "room {r}");
    }
}

/// Memory-store specifics.
mod memory_only {
    use super::*;

    #[tokio::test]
    async fn the_scheduler_stops_when_the_engine_is_dropped() {
        let presence = MemoryPresence::start(PresenceConfig::default());
        let weak = presence.downgrade_for_tests();
        drop(presence);
        assert!(weak.upgrade().is_none());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    #[tokio::test]
    async fn without_a_secret_each_server_signs_with_its_own_random_key() {
        let a = Presence::start(PresenceConfig::default());
        let b = Presence::start(PresenceConfig::default());
        let joined = a.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
        assert_eq!(
            b.list(&joined.room_token).await.map(|_| ()),
            Err(PresenceError::InvalidRoomToken)
        );
        assert_eq!(a.store_name(), "memory");
    }
}

#[cfg(feature = "redis")]
mod redis_only;

mod summary;

#[cfg(feature = "redis")]
mod differential;

async fn a_join_adopts_the_token_the_client_proposed_so_its_retry_finds_the_session(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let proposed = SessionToken::generate().to_hex();
    let mut first = req("r1", "ann", "s1");
    first.session_token = Some(proposed.clone());
    let joined = h.presence.heartbeat(&first).await.unwrap();
    assert!(joined.joined);
    assert!(
        kind.adopted(&joined.session_token, &proposed),
        "the proposed token is adopted"
    );
    // The same call again, as a client retries one that timed out after the server applied it:
    // it finds its own session, no ghost, no 403.
    let retry = h.presence.heartbeat(&first).await.unwrap();
    assert!(!retry.joined);
    assert_eq!(retry.session_token, joined.session_token);
    assert_eq!(h.snapshot("r1").await.users[0].sessions.len(), 1);
    // A token another live session holds is never adopted.
    let mut copycat = req("r1", "bob", "s2");
    copycat.session_token = Some(proposed.clone());
    let bob = h.presence.heartbeat(&copycat).await.unwrap();
    assert!(bob.joined);
    assert!(!kind.adopted(&bob.session_token, &proposed));
    h.presence.disconnect(&bob.session_token).await.unwrap();
    assert_eq!(
        users(&h.snapshot("r1").await),
        vec![("ann".into(), true), ("bob".into(), false)],
        "bob's own token ended bob's session, not ann's"
    );
    // A made-up token (not random-looking) is not adopted: the server makes one.
    let mut lazy = req("r1", "dan", "s4");
    lazy.session_token = Some("0".repeat(64));
    let dan = h.presence.heartbeat(&lazy).await.unwrap();
    assert!(dan.joined);
    assert_ne!(dan.session_token, "0".repeat(64));
    // Upper-case hex is the same token.
    let mut shouting = req("r1", "cyd", "s3");
    let token = SessionToken::generate().to_hex();
    shouting.session_token = Some(token.to_uppercase());
    assert!(kind.adopted(
        &h.presence.heartbeat(&shouting).await.unwrap().session_token,
        &token
    ));
}

async fn a_pause_does_not_end_sessions_whose_heartbeats_were_waiting(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let bob = h.join("r1", "bob", "s2").await;
    let _gone = h.join("r1", "cyd", "s3").await;
    let mut sub = h.watch(&ann.room_token).await;
    h.advance(10_000).await;
    for (who, sid, joined) in [("ann", "s1", &ann), ("bob", "s2", &bob)] {
        h.presence
            .heartbeat(&again(req("r1", who, sid), joined))
            .await
            .unwrap();
    }
    // Deadlines: ann and bob T0 + 35 s, cyd T0 + 25 s. The process stops at T0 + 10 s and runs
    // again at T0 + 40 s: the scheduler wakes 15 s after the deadline it slept for.
    h.clock.pause(30_000);
    settle().await;
    nothing_within(&mut sub, 100).await;
    // The heartbeats ann and bob sent during the pause are served now: their sessions live on.
    for (who, sid, joined) in [("ann", "s1", &ann), ("bob", "s2", &bob)] {
        let beat = h
            .presence
            .heartbeat(&again(req("r1", who, sid), joined))
            .await
            .unwrap();
        assert!(!beat.joined, "{who} kept the session (no leave, no rejoin)");
    }
    // After the grace (5 s), cyd, who really went away, ends; nobody else.
    h.advance(4_900).await;
    nothing_within(&mut sub, 100).await;
    h.advance(100).await;
    match next(&mut sub).await {
        RoomMessage::Left { user, reason, .. } => {
            assert_eq!(user.user_id, "cyd");
            assert_eq!(reason, LeaveReason::Expired);
        }
        other => panic!("{other:?}"),
    }
    nothing_within(&mut sub, 100).await;
    assert_eq!(
        users(&h.snapshot("r1").await),
        vec![
            ("ann".into(), true),
            ("bob".into(), true),
            ("cyd".into(), false)
        ]
    );
}

async fn names_are_stored_trimmed_and_an_untrimmed_repeat_changes_nothing(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let mut first = req("r1", "ann", "s1");
    first.name = "  Ann Lee \n".into();
    let ann = h.presence.heartbeat(&first).await.unwrap();
    let mut sub = h.watch(&ann.room_token).await;
    assert_eq!(h.snapshot("r1").await.users[0].name, "Ann Lee");
    for _ in 0..3 {
        h.presence
            .heartbeat(&again(first.clone(), &ann))
            .await
            .unwrap();
    }
    nothing_within(&mut sub, 100).await;
    let mut dishonest = again(req("r1", "ann", "s1"), &ann);
    dishonest.name = "Ann\u{202E}gnp.exe".into();
    assert!(matches!(
        h.presence.heartbeat(&dishonest).await,
        Err(PresenceError::InvalidInput {
            field: Field::Name,
            ..
        })
    ));
    nothing_within(&mut sub, 100).await;
    assert_eq!(h.snapshot("r1").await.users[0].name, "Ann Lee");
}

async fn readers_between_changes_share_one_list(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    for i in 0..50 {
        h.join("r1", &format!("u{i}"), &format!("s{i}")).await;
    }
    let token = h.presence.room_token("r1").unwrap();
    // With Redis, the list a server shares is the one its subscribers of the room share.
    let _watching = h.watch(&token).await;
    let first = h.presence.list_shared(&token).await.unwrap();
    for _ in 0..20 {
        let again = h.presence.list_shared(&token).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "built once, shared by every reader"
        );
    }
    assert!(first.json().contains("\"u49\""));
    h.join("r1", "late", "s-late").await;
    // Once the change reaches this server (on a Redis Cluster, pub/sub between nodes takes
    // longer than the 30 ms this waited before).
    let started = std::time::Instant::now();
    let mut after = h.presence.list_shared(&token).await.unwrap();
    while Arc::ptr_eq(&first, &after) && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        after = h.presence.list_shared(&token).await.unwrap();
    }
    assert!(!Arc::ptr_eq(&first, &after), "a change makes a new one");
    assert_eq!(after.message().seq(), 51);
}

async fn the_deepest_allowed_state_round_trips_and_a_deeper_one_is_refused(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let nested = |levels: usize| {
        let mut v = json!("x");
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    };
    let mut deep = req("r1", "ann", "s1");
    deep.state = Some(nested(crate::limits::MAX_STATE_DEPTH));
    let ann = h.presence.heartbeat(&deep).await.unwrap();
    let mut too_deep = req("r1", "bob", "s2");
    too_deep.state = Some(nested(125));
    assert!(matches!(
        h.presence.heartbeat(&too_deep).await,
        Err(PresenceError::InvalidInput {
            field: Field::State,
            ..
        })
    ));
    assert!(matches!(
        h.presence
            .update_state(
                &ann.session_token,
                nested(crate::limits::MAX_STATE_DEPTH + 1)
            )
            .await,
        Err(PresenceError::InvalidInput {
            field: Field::State,
            ..
        })
    ));
    // The room stays readable for everyone: list, and a subscription's snapshot.
    let listed = h.presence.list(&ann.room_token).await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].sessions[0].state, deep.state);
    let mut sub = h.presence.subscribe(&ann.room_token, None).await.unwrap();
    let json = sub.next().await.json().to_string();
    let decoded: RoomMessage = serde_json::from_str(&json).unwrap();
    assert!(matches!(decoded, RoomMessage::Snapshot(s) if s.users.len() == 1));
}

async fn deadlines_in_one_millisecond_are_handled_in_id_order(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            offline_retention_ms: 60_000,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    // Joined in the opposite order of their ids, so the order of the queue is not the answer.
    for (user, session) in [("u2", "s4"), ("u0", "s2")] {
        h.join("r1", user, session).await;
    }
    let mut sub = h.watch(&h.presence.room_token("r1").unwrap()).await;
    h.advance(25_000).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next(&mut sub).await {
            RoomMessage::Left { session_id, .. } => seen.push(session_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["s2", "s4"], "sessions by id");
    h.advance(60_000).await;
    let mut removed = Vec::new();
    for _ in 0..2 {
        match next(&mut sub).await {
            RoomMessage::Removed { user_id, .. } => removed.push(user_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(removed, ["u0", "u2"], "offline users by id");
}

async fn the_offline_cap_drops_the_last_in_room_order_among_ties(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            max_offline_users_per_room: 2,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let mut tokens = Vec::new();
    for user in ["b", "c", "a"] {
        tokens.push(h.join("r1", user, user).await.session_token);
    }
    // All three leave in the same millisecond: equally long gone. Room order puts ties by user
    // id, so the last of them, "c", is the one the cap drops (the stores once disagreed here).
    for token in &tokens {
        h.presence.disconnect(token).await.unwrap();
    }
    assert_eq!(
        users(&h.snapshot("r1").await),
        vec![("a".into(), false), ("b".into(), false)]
    );
}

async fn a_goodbye_is_taken_back_by_a_heartbeat_and_otherwise_ends_the_session_after_the_leave_grace(
    kind: Kind,
) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            leave_grace_ms: 1_500,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut watcher = h.watch(&ann.room_token).await;
    // A reload: the page says it is going, and comes back under the same session and token
    // within the grace. Nothing is published, then or after the grace.
    h.presence.going(&ann.session_token).await.unwrap();
    settle().await;
    h.advance(1_000).await;
    let back = h
        .presence
        .heartbeat(&again(req("r1", "ann", "s1"), &ann))
        .await
        .unwrap();
    assert!(!back.joined, "the same session, kept");
    assert_eq!(back.session_token, ann.session_token);
    h.advance(5_000).await;
    nothing_within(&mut watcher, 100).await;
    assert_eq!(users(&h.snapshot("r1").await), [("ann".into(), true)]);

    // A closed tab: it leaves when the grace runs out, as a disconnect, last seen at the goodbye.
    let said_at = h.clock.now_ms();
    h.presence.going(&ann.session_token).await.unwrap();
    settle().await;
    h.advance(1_499).await;
    nothing_within(&mut watcher, 100).await;
    h.clock.advance(1);
    match next(&mut watcher).await {
        RoomMessage::Left { reason, user, .. } => {
            assert_eq!(reason, LeaveReason::Disconnected);
            assert!(!user.online);
            assert_eq!(user.last_seen, Some(said_at));
        }
        other => panic!("{other:?}"),
    }
    // Its token is gone with it; a made-up one is a typed error and changes nothing.
    assert!(matches!(
        h.presence.going(&ann.session_token).await,
        Err(PresenceError::InvalidSessionToken)
    ));
    assert!(matches!(
        h.presence.going("not a token").await,
        Err(PresenceError::InvalidSessionToken)
    ));

    // A reload that makes a new session (no resume): the new one joins within the grace, so the
    // user never shows offline; the old one leaves after the grace with the user still online.
    let bob = h.join("r1", "bob", "s2").await;
    assert!(matches!(
        next(&mut watcher).await,
        RoomMessage::Joined { .. }
    ));
    h.presence.going(&bob.session_token).await.unwrap();
    settle().await;
    h.advance(500).await;
    let bob3 = h.join("r1", "bob", "s3").await;
    match next(&mut watcher).await {
        RoomMessage::Joined { user, session, .. } => {
            assert!(user.online);
            assert_eq!(session.session_id, "s3");
        }
        other => panic!("{other:?}"),
    }
    h.advance(1_000).await;
    match next(&mut watcher).await {
        RoomMessage::Left {
            session_id, user, ..
        } => {
            assert_eq!(session_id, "s2");
            assert!(user.online, "bob stays online");
        }
        other => panic!("{other:?}"),
    }
    // On behalf of another user: refused, and nothing changes.
    assert!(matches!(
        h.presence.going_as("ann", &bob3.session_token).await,
        Err(PresenceError::Forbidden { .. })
    ));
    h.advance(5_000).await;
    nothing_within(&mut watcher, 100).await;
}

async fn a_state_with_floats_reads_back_exactly_and_the_same_again_changes_nothing(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut watcher = h.watch(&ann.room_token).await;
    // A number that the default JSON parser reads back one unit in the last place off.
    let state = json!({"x": 130.65331632653061, "y": 0.1, "z": 1e-300});
    h.presence
        .update_state(&ann.session_token, state.clone())
        .await
        .unwrap();
    assert!(matches!(
        next(&mut watcher).await,
        RoomMessage::Updated { .. }
    ));
    let listed = h.snapshot("r1").await;
    assert_eq!(listed.users[0].sessions[0].state.as_ref(), Some(&state));
    h.presence
        .update_state(&ann.session_token, state)
        .await
        .unwrap();
    nothing_within(&mut watcher, 200).await;
}

async fn idle_is_one_updated_each_way_and_an_idle_tabs_heartbeats_change_nothing(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut watcher = h.watch(&ann.room_token).await;
    h.advance(1_000).await;
    let idle = again(req("r1", "ann", "s1"), &ann).idle_for_ms(Some(300_000));
    h.presence.heartbeat(&idle).await.unwrap();
    let went_idle_at = h.clock.now_ms() - 300_000;
    match next(&mut watcher).await {
        RoomMessage::Updated { user, session, .. } => {
            assert_eq!(user.status_label(), "idle");
            assert_eq!(session.status, crate::wire::SessionStatus::Idle);
            assert_eq!(session.idle_since, Some(went_idle_at));
        }
        other => panic!("{other:?}"),
    }
    // Still idle, later and longer: nothing changes (idle since stays when it began).
    h.advance(10_000).await;
    h.presence
        .heartbeat(&idle.clone().idle_for_ms(Some(310_000)))
        .await
        .unwrap();
    nothing_within(&mut watcher, 300).await;
    // Input again: one updated, active.
    h.presence
        .heartbeat(&again(req("r1", "ann", "s1"), &ann))
        .await
        .unwrap();
    match next(&mut watcher).await {
        RoomMessage::Updated { user, session, .. } => {
            assert_eq!(user.status_label(), "online");
            assert_eq!(session.idle_since, None);
        }
        other => panic!("{other:?}"),
    }
    // Hidden beats idle: away.
    h.presence
        .heartbeat(&idle.clone().away(true))
        .await
        .unwrap();
    match next(&mut watcher).await {
        RoomMessage::Updated { user, .. } => assert_eq!(user.status_label(), "away"),
        other => panic!("{other:?}"),
    }
}

async fn server_side_code_is_told_when_a_room_is_occupied_and_vacated(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            max_offline_users_per_room: 0,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let mut changes = h.presence.changes();
    let ann = h.join("r1", "ann", "s1").await;
    let ann2 = h.join("r1", "ann", "s2").await;
    let bob = h.join("r1", "bob", "s3").await;
    h.presence.disconnect(&ann.session_token).await.unwrap();
    h.presence.disconnect(&ann2.session_token).await.unwrap();
    h.presence.disconnect(&bob.session_token).await.unwrap();
    // A user with two tabs removed by the app: the room goes from 2 sessions to none at once.
    let cy = h.join("r2", "cy", "s4").await;
    h.join("r2", "cy", "s5").await;
    h.presence.remove_room_user("r2", "cy").await.unwrap();
    drop(cy);
    let mut seen = Vec::new();
    // r1: 3 joins, 3 lefts (a user going offline is removed at once: the offline cap is 0);
    // r2: 2 joins, 1 removed.
    for _ in 0..11 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("the engine is alive");
        let m = change.message.message();
        seen.push((change.room.to_string(), kind_of(m), change.occupancy));
    }
    use crate::server::Occupancy::{Occupied, Vacated};
    let expected: Vec<(String, &str, Option<crate::server::Occupancy>)> = [
        ("r1", "joined", Some(Occupied)),
        ("r1", "joined", None),
        ("r1", "joined", None),
        ("r1", "left", None),
        ("r1", "left", None),
        ("r1", "removed", None),
        ("r1", "left", Some(Vacated)),
        ("r1", "removed", None),
        ("r2", "joined", Some(Occupied)),
        ("r2", "joined", None),
        ("r2", "removed", Some(Vacated)),
    ]
    .iter()
    .map(|(r, k, o)| (r.to_string(), *k, *o))
    .collect();
    assert_in_order(kind, &seen, &expected, |c| &c.0);
}

async fn many_users_status_at_once_online_anywhere_or_last_seen(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    // Ann: online in r2, offline in r1. Bob: offline in r1 and r2 (r2 later). Cy: never seen.
    let ann1 = h.join("r1", "ann", "s1").await;
    h.join("r2", "ann", "s2").await;
    let bob1 = h.join("r1", "bob", "s3").await;
    let bob2 = h.join("r2", "bob", "s4").await;
    h.advance(1_000).await;
    h.presence.disconnect(&ann1.session_token).await.unwrap();
    h.presence.disconnect(&bob1.session_token).await.unwrap();
    h.advance(1_000).await;
    h.presence.disconnect(&bob2.session_token).await.unwrap();
    let bob_last = h.clock.now_ms();
    let status = h.presence.users_status(["ann", "bob", "cy"]).await.unwrap();
    let seen: Vec<(&str, bool, Option<u64>)> = status
        .iter()
        .map(|s| (s.user_id.as_str(), s.online, s.last_seen))
        .collect();
    assert_eq!(
        seen,
        [
            ("ann", true, None),
            ("bob", false, Some(bob_last)),
            ("cy", false, None)
        ]
    );
    // Removed from both rooms: no room lists Bob any more.
    h.presence.remove_room_user("r1", "bob").await.unwrap();
    h.presence.remove_room_user("r2", "bob").await.unwrap();
    let bob = &h.presence.users_status(["bob"]).await.unwrap()[0];
    assert_eq!((bob.online, bob.last_seen), (false, None));
    // Bad input: typed errors.
    assert!(matches!(
        h.presence.users_status([""]).await,
        Err(PresenceError::InvalidInput { .. })
    ));
    let many = (0..=1_000).map(|i| format!("u{i}"));
    assert!(matches!(
        h.presence.users_status(many).await,
        Err(PresenceError::BadRequest { .. })
    ));
    assert!(h
        .presence
        .users_status(Vec::<String>::new())
        .await
        .unwrap()
        .is_empty());
}

async fn agents_show_their_kind_skip_the_user_caps_and_expire_after_their_ttl(kind: Kind) {
    let config = base_config().max_rooms_per_user(1).max_sessions_per_user(1);
    let Some(h) = open(kind, config).await else {
        return;
    };
    let person = h.join("r1", "bot", "s1").await;
    // The user's one room and one session are taken; its agent still joins, elsewhere.
    let agent = crate::wire::HeartbeatRequest::agent("r2", "bot", "a1", "Summarizer", 60_000);
    let joined = h
        .presence
        .heartbeat(&agent)
        .await
        .expect("an agent skips the user caps");
    assert_eq!(joined.expires_at, h.clock.now_ms() + 60_000);
    assert!(matches!(
        h.presence.heartbeat(&req("r1", "bot", "s2")).await,
        Err(PresenceError::TooManySessions { limit: 1 })
    ));
    let room = h.snapshot("r2").await;
    assert_eq!(room.users[0].kind, crate::wire::PresenceKind::Agent);
    assert_eq!(
        room.users[0].sessions[0].kind,
        crate::wire::PresenceKind::Agent
    );
    assert_eq!(
        h.snapshot("r1").await.users[0].kind,
        crate::wire::PresenceKind::Person
    );
    // A session's kind is fixed at its join: a typed error, nothing changes.
    let before = h.snapshot("r1").await;
    let mut claim = again(req("r1", "bot", "s1"), &person);
    claim.kind = crate::wire::PresenceKind::Agent;
    claim.ttl_ms = Some(3_600_000);
    assert!(matches!(
        h.presence.heartbeat(&claim).await,
        Err(PresenceError::BadRequest { .. })
    ));
    assert_eq!(h.snapshot("r1").await, before);
    // It lives its TTL after its last heartbeat, not a person's expiry.
    let mut watcher = h.watch(&joined.room_token).await;
    h.advance(59_000).await;
    nothing_within(&mut watcher, 100).await;
    h.advance(1_500).await;
    match next(&mut watcher).await {
        RoomMessage::Left { reason, user, .. } => {
            assert_eq!(reason, LeaveReason::Expired);
            assert_eq!(user.kind, crate::wire::PresenceKind::Agent);
            assert!(!user.online);
        }
        other => panic!("{other:?}"),
    }
}

async fn an_agent_handle_keeps_itself_present_and_leaves_when_dropped(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let options = AgentOptions::new("r1", "bot:summary", "Summarizer")
        .ttl_ms(60_000)
        .state(json!({"doing": "reading"}));
    let agent = h.presence.join_agent(options).await.unwrap();
    assert!(agent.session_id().starts_with("agent-"));
    let room = h.snapshot("r1").await;
    let user = &room.users[0];
    assert_eq!(
        (user.kind, user.online),
        (crate::wire::PresenceKind::Agent, true)
    );
    assert_eq!(user.sessions[0].state, Some(json!({"doing": "reading"})));
    let mut watcher = h.watch(agent.room_token()).await;
    agent.set_state(json!({"doing": "writing"})).await.unwrap();
    match next(&mut watcher).await {
        RoomMessage::Updated { session, .. } => {
            assert_eq!(session.state, Some(json!({"doing": "writing"})))
        }
        other => panic!("{other:?}"),
    }
    // A bad state is a typed error and changes nothing.
    assert!(matches!(
        agent.set_state(json!({"big": "y".repeat(5000)})).await,
        Err(PresenceError::InvalidInput {
            field: Field::State,
            ..
        })
    ));
    drop(agent);
    match next(&mut watcher).await {
        RoomMessage::Left { reason, .. } => assert_eq!(reason, LeaveReason::Disconnected),
        other => panic!("{other:?}"),
    }
}

/// Every read path others have, for one user: (listed in the room, online there, rooms
/// `list_user` gives, `users_status` online and last seen).
async fn seen_of(
    h: &Harness,
    room: &str,
    user: &str,
) -> (bool, bool, Vec<String>, bool, Option<u64>) {
    let snapshot = h.snapshot(room).await;
    let listed = snapshot.users.iter().find(|u| u.user_id == user);
    let status = &h.presence.users_status([user]).await.unwrap()[0];
    (
        listed.is_some(),
        listed.is_some_and(|u| u.online),
        h.presence.list_user(user).await.unwrap(),
        status.online,
        status.last_seen,
    )
}

/// The next change server-side code sees, if one comes within `ms`.
async fn change_within(changes: &mut Changes, ms: u64) -> Option<RoomChange> {
    tokio::time::timeout(Duration::from_millis(ms), changes.next())
        .await
        .ok()
        .flatten()
}

async fn an_invisible_session_is_in_no_read_path_and_showing_it_is_one_joined(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut watcher = h.watch(&ann.room_token).await;
    let mut changes = h.presence.changes();
    // Eve joins invisibly, in r1 and in r2 (a room with nobody else).
    let eve_req = req("r1", "eve", "e1").invisible(true);
    let eve = h.presence.heartbeat(&eve_req).await.unwrap();
    assert!(eve.joined);
    let eve2 = h
        .presence
        .heartbeat(&req("r2", "eve", "e2").invisible(true))
        .await
        .unwrap();
    // She changes her state and goes away: still nobody is told anything.
    h.presence
        .heartbeat(
            &again(eve_req.clone(), &eve)
                .state(json!({"x": 1}))
                .away(true),
        )
        .await
        .unwrap();
    h.presence
        .update_state(&eve.session_token, json!({"x": 2}))
        .await
        .unwrap();
    nothing_within(&mut watcher, 300).await;
    assert!(
        change_within(&mut changes, 100).await.is_none(),
        "changes() and occupancy"
    );
    assert_eq!(
        seen_of(&h, "r1", "eve").await,
        (false, false, vec![], false, None)
    );
    assert!(h.snapshot("r2").await.users.is_empty());
    if let Some(paint) = h.presence.list_room_now("r1") {
        assert!(paint.users.iter().all(|u| u.user_id != "eve"), "SSR paint");
    }
    // She watches: her subscription (holding her session) sees Ann, not herself.
    let mut hers = h
        .presence
        .subscribe(&eve.room_token, Some(&eve.session_token))
        .await
        .unwrap();
    match next(&mut hers).await {
        RoomMessage::Snapshot(s) => assert_eq!(users(&s), [("ann".to_string(), true)]),
        other => panic!("{other:?}"),
    }
    // Showing herself: one joined, with her state, and she is in every read path.
    let shown = again(eve_req.clone(), &eve).invisible(false);
    h.presence.heartbeat(&shown).await.unwrap();
    match next(&mut watcher).await {
        RoomMessage::Joined {
            user,
            session_id,
            session,
            ..
        } => {
            assert_eq!((user.user_id.as_str(), session_id.as_str()), ("eve", "e1"));
            assert!(user.online);
            assert_eq!(session.session_id, "e1");
            assert_eq!(session.state, Some(json!({"x": 2})));
        }
        other => panic!("{other:?}"),
    }
    nothing_within(&mut watcher, 200).await;
    let change = change_within(&mut changes, 2_000).await.expect("a change");
    assert_eq!(
        (kind_of(change.message.message()), change.occupancy),
        ("joined", None)
    );
    assert_eq!(
        seen_of(&h, "r1", "eve").await,
        (true, true, vec!["r1".to_string()], true, None)
    );
    // Invisible again: to others she leaves (disconnected), last seen now.
    h.advance(1_000).await;
    h.presence
        .heartbeat(&shown.clone().invisible(true))
        .await
        .unwrap();
    let hid_at = h.clock.now_ms();
    match next(&mut watcher).await {
        RoomMessage::Left { user, reason, .. } => {
            assert_eq!(reason, LeaveReason::Disconnected);
            assert!(!user.online);
            assert_eq!(user.last_seen, Some(hid_at));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        seen_of(&h, "r1", "eve").await,
        (true, false, vec![], false, Some(hid_at))
    );
    // Her invisible sessions end: nobody is told; r1 still lists her offline as last seen, r2
    // never listed her.
    drop(hers);
    h.presence.disconnect(&eve.session_token).await.unwrap();
    h.presence.disconnect(&eve2.session_token).await.unwrap();
    nothing_within(&mut watcher, 300).await;
    let _ = change_within(&mut changes, 100).await; // (r1's left above)
    assert!(change_within(&mut changes, 100).await.is_none());
    assert_eq!(
        seen_of(&h, "r1", "eve").await,
        (true, false, vec![], false, Some(hid_at))
    );
    assert!(h.snapshot("r2").await.users.is_empty());
}

async fn an_offline_user_present_invisibly_is_listed_as_if_it_were_not_there(kind: Kind) {
    let config = PresenceConfig {
        offline_retention_ms: 60_000,
        max_sessions_per_room: 2,
        ..base_config()
    };
    let Some(h) = open(kind, config).await else {
        return;
    };
    let bob = h.join("r1", "bob", "s1").await;
    h.presence.disconnect(&bob.session_token).await.unwrap();
    let left_at = h.clock.now_ms();
    let mut watcher = h.watch(&bob.room_token).await;
    // 50 s later Bob comes back invisibly: he still looks offline since then.
    h.advance(50_000).await;
    let hidden = h
        .presence
        .heartbeat(&req("r1", "bob", "s2").invisible(true))
        .await
        .unwrap();
    nothing_within(&mut watcher, 200).await;
    assert_eq!(
        seen_of(&h, "r1", "bob").await,
        (true, false, vec![], false, Some(left_at))
    );
    // His invisible session holds its place under the room's cap (2): Ann fits, Cy does not.
    h.join("r1", "ann", "a1").await;
    watcher_skip(&mut watcher, 1).await;
    assert!(matches!(
        h.presence.heartbeat(&req("r1", "cy", "c1")).await,
        Err(PresenceError::RoomFull { limit: 2, .. })
    ));
    // His listing runs out on time (60 s after he left), as if he were not there.
    h.advance(11_000).await;
    match next(&mut watcher).await {
        RoomMessage::Removed { user_id, .. } => assert_eq!(user_id, "bob"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        seen_of(&h, "r1", "bob").await,
        (false, false, vec![], false, None)
    );
    // His invisible session lives on, and showing it is one join.
    let hidden = again(req("r1", "bob", "s2").invisible(true), &hidden);
    assert!(!h.presence.heartbeat(&hidden).await.unwrap().joined);
    h.presence
        .heartbeat(&hidden.clone().invisible(false))
        .await
        .unwrap();
    match next(&mut watcher).await {
        RoomMessage::Joined { user, .. } => assert!(user.online && user.user_id == "bob"),
        other => panic!("{other:?}"),
    }
}

async fn the_offline_cap_drops_an_offline_user_present_invisibly_as_any_other(kind: Kind) {
    let config = PresenceConfig {
        max_offline_users_per_room: 1,
        ..base_config()
    };
    let Some(h) = open(kind, config).await else {
        return;
    };
    let bob = h.join("r1", "bob", "b1").await;
    h.presence.disconnect(&bob.session_token).await.unwrap();
    let hidden = h
        .presence
        .heartbeat(&req("r1", "bob", "b2").invisible(true))
        .await
        .unwrap();
    let mut watcher = h.watch(&bob.room_token).await;
    // Cy goes offline later: the cap (1) drops the longest gone, Bob, invisible or not.
    h.advance(1_000).await;
    let cy = h.join("r1", "cy", "c1").await;
    h.presence.disconnect(&cy.session_token).await.unwrap();
    watcher_skip(&mut watcher, 2).await;
    match next(&mut watcher).await {
        RoomMessage::Removed { user_id, .. } => assert_eq!(user_id, "bob"),
        other => panic!("{other:?}"),
    }
    assert_eq!(users(&h.snapshot("r1").await), [("cy".to_string(), false)]);
    // Bob's invisible session lives on; its end tells nobody anything.
    h.presence.disconnect(&hidden.session_token).await.unwrap();
    nothing_within(&mut watcher, 200).await;
    assert_eq!(users(&h.snapshot("r1").await), [("cy".to_string(), false)]);
}

/// Reads `n` messages (changes the test is not about).
async fn watcher_skip(watcher: &mut Subscription, n: usize) {
    for _ in 0..n {
        next(watcher).await;
    }
}
