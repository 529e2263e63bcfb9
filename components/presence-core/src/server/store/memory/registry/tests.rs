//! Registry behaviour with explicit time: every test runs in microseconds.

use super::*;
use crate::server::RateLimit;
use crate::wire::SessionStatus;
use serde_json::json;
use tokio::sync::broadcast::error::TryRecvError;

use crate::server::test_support::{req, T0};

fn registry(config: PresenceConfig) -> Registry {
    Registry::new(config, RoomTokenKey::new(b"test key"))
}

fn config() -> PresenceConfig {
    PresenceConfig {
        subscription_grace_ms: 1_000,
        ..PresenceConfig::default()
    }
}

/// Heartbeats again with the token the session got when it joined.
fn again(mut r: HeartbeatRequest, token: SessionToken) -> HeartbeatRequest {
    r.session_token = Some(token.to_hex());
    r
}

struct Watch {
    _key: SubscriberKey,
    rx: broadcast::Receiver<Arc<SharedMessage>>,
}

impl Watch {
    fn new(reg: &mut Registry, room: &str) -> Self {
        let (key, _, rx) = reg.subscribe(room, None, None).unwrap();
        Watch { _key: key, rx }
    }

    fn drain(&mut self) -> Vec<RoomMessage> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => out.push(m.message().clone()),
                Err(TryRecvError::Empty) => return out,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }
}

fn kinds(messages: &[RoomMessage]) -> Vec<&'static str> {
    messages
        .iter()
        .map(|m| match m {
            RoomMessage::Snapshot(_) => "snapshot",
            RoomMessage::Joined { .. } => "joined",
            RoomMessage::Left { .. } => "left",
            RoomMessage::Updated { .. } => "updated",
            RoomMessage::Removed { .. } => "removed",
            RoomMessage::Summary(_) => "summary",
            RoomMessage::Me { .. } => "me",
        })
        .collect()
}

fn user_ids(snapshot: &RoomSnapshot) -> Vec<(&str, bool)> {
    snapshot
        .users
        .iter()
        .map(|u| (u.user_id.as_str(), u.online))
        .collect()
}

#[test]
fn join_then_disconnect() {
    let mut reg = registry(config());
    let mut watch = Watch::new(&mut reg, "r1");
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    assert!(a.joined);
    assert_eq!(a.expires_at, T0 + 25_000);
    let snap = reg.snapshot("r1");
    assert_eq!(user_ids(&snap), [("ann", true)]);
    assert_eq!(snap.users[0].sessions[0].session_id, "s1");
    assert_eq!(snap.users[0].name, "Name ann");
    assert_eq!(reg.list_user("ann"), ["r1"]);

    reg.disconnect(&a.token.to_hex(), None, T0 + 5).unwrap();
    let snap = reg.snapshot("r1");
    assert_eq!(user_ids(&snap), [("ann", false)]);
    assert_eq!(snap.users[0].last_seen, Some(T0 + 5));
    assert!(snap.users[0].sessions.is_empty());
    assert!(reg.list_user("ann").is_empty());
    assert_eq!(kinds(&watch.drain()), ["joined", "left"]);
    // The token is spent.
    assert_eq!(
        reg.disconnect(&a.token.to_hex(), None, T0 + 6),
        Err(PresenceError::InvalidSessionToken)
    );
}

#[test]
fn a_heartbeat_that_changes_nothing_publishes_nothing() {
    let mut reg = registry(config());
    let mut watch = Watch::new(&mut reg, "r1");
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    assert_eq!(watch.drain().len(), 1);
    let seq = reg.snapshot("r1").seq;
    for i in 1..=100 {
        let again = reg
            .heartbeat(&again(req("r1", "ann", "s1"), a.token), T0 + i * 1000)
            .unwrap();
        assert!(!again.joined);
        assert_eq!(again.token, a.token);
    }
    assert!(watch.drain().is_empty());
    assert_eq!(reg.snapshot("r1").seq, seq, "no change, no sequence number");
    // No deadline was queued either: heartbeats only store the new deadline.
    assert_eq!(reg.queue.len(), 1);
}

#[test]
fn changes_are_one_updated_event_never_left_and_joined() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let mut watch = Watch::new(&mut reg, "r1");

    let mut renamed = again(req("r1", "ann", "s1"), a.token);
    renamed.name = "Ann B.".into();
    reg.heartbeat(&renamed.clone(), T0 + 1).unwrap();
    let mut away = renamed.clone();
    away.away = true;
    reg.heartbeat(&away, T0 + 2).unwrap();
    reg.set_away(&a.token.to_hex(), false, T0 + 2).unwrap();
    reg.set_away(&a.token.to_hex(), false, T0 + 2).unwrap(); // no change
    reg.update_state(&a.token.to_hex(), json!({"section": "intro"}), None, T0 + 3)
        .unwrap();
    reg.update_state(&a.token.to_hex(), json!({"section": "intro"}), None, T0 + 4)
        .unwrap(); // no change
    let mut with_state = renamed;
    with_state.state = Some(json!({"section": "faq", "typing": true}));
    reg.heartbeat(&with_state, T0 + 5).unwrap();

    let events = watch.drain();
    assert_eq!(kinds(&events), ["updated"; 5]);
    let RoomMessage::Updated {
        user,
        session_id,
        session,
        ..
    } = events.last().unwrap()
    else {
        unreachable!()
    };
    assert_eq!(session_id, "s1");
    assert_eq!(user.name, "Ann B.");
    assert_eq!(
        session.state,
        Some(json!({"section": "faq", "typing": true}))
    );
    // Sequence numbers follow each other.
    let seqs: Vec<u64> = events.iter().map(RoomMessage::seq).collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    // null clears the state.
    reg.update_state(&a.token.to_hex(), json!(null), None, T0 + 6)
        .unwrap();
    assert_eq!(reg.snapshot("r1").users[0].sessions[0].state, None);
}

#[test]
fn away_is_shown_not_dropped() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let mut hidden = again(req("r1", "ann", "s1"), a.token);
    hidden.away = true;
    hidden.interval_ms = Some(60_000);
    let hb = reg.heartbeat(&hidden, T0 + 1).unwrap();
    assert_eq!(
        hb.expires_at,
        T0 + 1 + 150_000,
        "a hidden tab stretches its deadline"
    );
    let snap = reg.snapshot("r1");
    assert!(snap.users[0].online);
    assert!(snap.users[0].away);
    assert_eq!(snap.users[0].status_label(), "away");
    assert_eq!(snap.users[0].sessions[0].status, SessionStatus::Away);
    reg.expire_due(T0 + 100_000);
    assert!(
        reg.snapshot("r1").users[0].online,
        "still there past the short deadline"
    );
}

#[test]
fn one_user_two_sessions_is_one_user_online_until_both_end() {
    let mut reg = registry(config());
    let mut watch = Watch::new(&mut reg, "r1");
    let t1 = reg.heartbeat(&req("r1", "ann", "tab1"), T0).unwrap();
    let mut second = req("r1", "ann", "tab2");
    second.away = true;
    let t2 = reg.heartbeat(&second, T0 + 10).unwrap();
    let snap = reg.snapshot("r1");
    assert_eq!(snap.users.len(), 1);
    let sessions: Vec<&str> = snap.users[0]
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(sessions, ["tab1", "tab2"], "sessions in join order");
    assert!(!snap.users[0].away, "away only when every session is away");

    reg.disconnect(&t1.token.to_hex(), None, T0 + 20).unwrap();
    let snap = reg.snapshot("r1");
    assert!(snap.users[0].online);
    assert!(snap.users[0].away);
    assert_eq!(reg.list_user("ann"), ["r1"]);
    reg.disconnect(&t2.token.to_hex(), None, T0 + 30).unwrap();
    assert!(!reg.snapshot("r1").users[0].online);
    let events = watch.drain();
    assert_eq!(kinds(&events), ["joined", "joined", "left", "left"]);
    let RoomMessage::Left { user, .. } = &events[2] else {
        unreachable!()
    };
    assert!(user.online, "first tab closing keeps the user online");
    let RoomMessage::Left { user, .. } = &events[3] else {
        unreachable!()
    };
    assert!(!user.online);
}

#[test]
fn sessions_expire_in_deadline_order_and_only_when_due() {
    let mut reg = registry(config());
    let mut watch = Watch::new(&mut reg, "r1");
    let mut slow = req("r1", "slow", "s-slow");
    slow.interval_ms = Some(29_000); // deadline T0 + 33.5 s (29 s + the 4.5 s slack)
    reg.heartbeat(&slow, T0).unwrap();
    reg.heartbeat(&req("r1", "fast", "s-fast"), T0).unwrap(); // T0 + 25 s
    let mut tiny = req("r1", "tiny", "s-tiny");
    tiny.interval_ms = Some(1); // clamped to 1 s: T0 + 2.5 s
    assert_eq!(reg.heartbeat(&tiny, T0).unwrap().interval_ms, 1_000);
    watch.drain();

    reg.expire_due(T0 + 2_499);
    assert!(watch.drain().is_empty());
    reg.expire_due(T0 + 2_500);
    reg.expire_due(T0 + 33_499);
    reg.expire_due(T0 + 33_500);
    let left: Vec<(String, LeaveReason)> = watch
        .drain()
        .into_iter()
        .map(|m| match m {
            RoomMessage::Left { user, reason, .. } => (user.user_id, reason),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        left,
        [
            ("tiny".to_string(), LeaveReason::Expired),
            ("fast".to_string(), LeaveReason::Expired),
            ("slow".to_string(), LeaveReason::Expired),
        ]
    );
    assert_eq!(reg.session_count(), 0);
}

#[test]
fn a_heartbeat_defers_expiry_without_touching_the_queue_until_due() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap(); // due T0 + 25 s
    reg.heartbeat(&again(req("r1", "ann", "s1"), a.token), T0 + 20_000)
        .unwrap(); // now due T0 + 45 s
    assert_eq!(reg.queue.len(), 1);
    reg.expire_due(T0 + 25_000); // old entry pops, finds a later deadline, re-queues once
    assert!(reg.snapshot("r1").users[0].online);
    assert_eq!(reg.next_deadline(), Some(T0 + 45_000));
    reg.expire_due(T0 + 45_000);
    let user = &reg.snapshot("r1").users[0];
    assert!(!user.online);
    assert_eq!(
        user.last_seen,
        Some(T0 + 20_000),
        "last seen at the last heartbeat"
    );
}

#[test]
fn room_order_is_stable_online_by_join_then_offline_by_recency() {
    let mut reg = registry(config());
    let mut tokens = std::collections::HashMap::new();
    for (i, u) in ["a", "b", "c", "d"].iter().enumerate() {
        let hb = reg
            .heartbeat(&req("r1", u, &format!("s-{u}")), T0 + i as u64)
            .unwrap();
        tokens.insert(*u, hb.token);
    }
    // Heartbeats and updates do not reorder.
    for u in ["d", "c", "b", "a"] {
        reg.heartbeat(&again(req("r1", u, &format!("s-{u}")), tokens[u]), T0 + 100)
            .unwrap();
    }
    reg.update_state(&tokens["a"].to_hex(), json!({"x": 1}), None, T0 + 101)
        .unwrap();
    assert_eq!(
        user_ids(&reg.snapshot("r1")),
        [("a", true), ("b", true), ("c", true), ("d", true)]
    );
    reg.disconnect(&tokens["b"].to_hex(), None, T0 + 200)
        .unwrap();
    reg.disconnect(&tokens["a"].to_hex(), None, T0 + 300)
        .unwrap();
    assert_eq!(
        user_ids(&reg.snapshot("r1")),
        [("c", true), ("d", true), ("a", false), ("b", false)]
    );
    // b comes back: placed after those already online.
    reg.heartbeat(&req("r1", "b", "s-b2"), T0 + 400).unwrap();
    assert_eq!(
        user_ids(&reg.snapshot("r1")),
        [("c", true), ("d", true), ("b", true), ("a", false)]
    );
    assert_eq!(reg.snapshot("r1"), reg.snapshot("r1"), "same answer twice");
}

#[test]
fn offline_users_are_kept_within_retention_and_count_bounds() {
    let mut reg = registry(PresenceConfig {
        offline_retention_ms: 60_000,
        max_offline_users_per_room: 2,
        ..config()
    });
    let mut watch = Watch::new(&mut reg, "r1");
    for (i, u) in ["a", "b", "c"].iter().enumerate() {
        let hb = reg.heartbeat(&req("r1", u, "s"), T0).unwrap();
        // Each disconnects at its own time; "s" is reused per user after the previous ended.
        reg.disconnect(&hb.token.to_hex(), None, T0 + 1_000 * (i as u64 + 1))
            .unwrap();
    }
    // a was the longest gone: dropped when c made three offline.
    assert_eq!(user_ids(&reg.snapshot("r1")), [("c", false), ("b", false)]);
    let events = watch.drain();
    assert_eq!(
        kinds(&events),
        ["joined", "left", "joined", "left", "joined", "left", "removed"]
    );
    // Retention: b (gone at +2 s) is dropped at +62 s, c (+3 s) at +63 s.
    reg.expire_due(T0 + 61_999);
    assert_eq!(reg.snapshot("r1").users.len(), 2);
    reg.expire_due(T0 + 62_000);
    assert_eq!(user_ids(&reg.snapshot("r1")), [("c", false)]);
    reg.expire_due(T0 + 63_000);
    assert!(reg.snapshot("r1").users.is_empty());
    // Coming back online cancels retention.
    let hb = reg.heartbeat(&req("r1", "z", "s"), T0 + 70_000).unwrap();
    reg.disconnect(&hb.token.to_hex(), None, T0 + 70_001)
        .unwrap();
    let mut long = req("r1", "z", "s2");
    long.interval_ms = Some(300_000);
    reg.heartbeat(&long, T0 + 70_002).unwrap();
    reg.expire_due(T0 + 130_001); // when z's cancelled retention would have ended
    assert_eq!(user_ids(&reg.snapshot("r1")), [("z", true)]);
}

#[test]
fn churn_leaves_the_deadline_queue_bounded_by_what_is_live() {
    // A day of retention and a cap of 2 offline users: every user that leaves is soon dropped
    // by the cap, but its retention entry (and its session's timer) would wait a day in the
    // queue without compaction.
    let mut reg = registry(PresenceConfig {
        max_offline_users_per_room: 2,
        ..config()
    });
    let mut longest = 0;
    for i in 0..20_000u64 {
        let user = format!("u{i}");
        let hb = reg.heartbeat(&req("r1", &user, "s"), T0 + i).unwrap();
        reg.compact_queue_if_stale();
        reg.disconnect(&hb.token.to_hex(), None, T0 + i).unwrap();
        reg.compact_queue_if_stale();
        longest = longest.max(reg.queue.len());
    }
    // Live: no sessions, 2 offline users. Without compaction it would be 40,000 entries.
    assert!(
        longest <= 2 * 3 + 1024 + 2,
        "the queue reached {longest} entries"
    );
    // What is live still works: the two kept users' retention ends on time.
    assert_eq!(reg.snapshot("r1").users.len(), 2);
    reg.expire_due(T0 + 20_000 + 24 * 60 * 60 * 1000);
    assert!(reg.snapshot("r1").users.is_empty());
}

#[test]
fn an_empty_unwatched_room_is_forgotten() {
    let mut reg = registry(PresenceConfig {
        offline_retention_ms: 1,
        ..config()
    });
    let hb = reg.heartbeat(&req("r1", "a", "s"), T0).unwrap();
    reg.disconnect(&hb.token.to_hex(), None, T0).unwrap();
    reg.expire_due(T0 + 1);
    assert_eq!(reg.room_count(), 0);
}

#[test]
fn token_misuse_is_a_typed_error_and_changes_nothing() {
    let mut reg = registry(config());
    let mut watch = Watch::new(&mut reg, "r1");
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    watch.drain();
    let before = reg.snapshot("r1");
    let forged = SessionToken::generate().to_hex();

    // Someone else heartbeating an existing session id, with no token or a wrong one.
    assert!(matches!(
        reg.heartbeat(&req("r1", "mallory", "s1"), T0 + 1),
        Err(PresenceError::SessionTokenMismatch { .. })
    ));
    let mut wrong = req("r1", "ann", "s1");
    wrong.session_token = Some(forged.clone());
    wrong.name = "hijacked".into();
    assert!(matches!(
        reg.heartbeat(&wrong, T0 + 1),
        Err(PresenceError::SessionTokenMismatch { .. })
    ));
    // The right token under another user id.
    assert!(matches!(
        reg.heartbeat(&again(req("r1", "bob", "s1"), a.token), T0 + 1),
        Err(PresenceError::Forbidden { .. })
    ));
    // Malformed and forged tokens on every token-taking call.
    for bad in [forged.as_str(), "", "zz", "not a token at all"] {
        assert_eq!(
            reg.disconnect(bad, None, T0),
            Err(PresenceError::InvalidSessionToken)
        );
        assert_eq!(
            reg.update_state(bad, json!(1), None, T0),
            Err(PresenceError::InvalidSessionToken)
        );
        assert_eq!(
            reg.set_away(bad, true, T0),
            Err(PresenceError::InvalidSessionToken)
        );
        assert_eq!(
            reg.subscribe("r1", Some(bad), None).map(|_| ()),
            Err(PresenceError::InvalidSessionToken)
        );
    }
    // A token of a session in another room does not open this one.
    let other = reg.heartbeat(&req("r2", "bob", "s9"), T0).unwrap();
    assert_eq!(
        reg.subscribe("r1", Some(&other.token.to_hex()), None)
            .map(|_| ()),
        Err(PresenceError::InvalidSessionToken)
    );
    let mut malformed = req("r1", "ann", "s1");
    malformed.session_token = Some("xyz".into());
    assert!(matches!(
        reg.heartbeat(&malformed, T0),
        Err(PresenceError::InvalidInput {
            field: Field::Token,
            ..
        })
    ));

    assert_eq!(reg.snapshot("r1"), before, "nothing changed");
    assert!(watch.drain().is_empty(), "nobody was told anything");
}

#[test]
fn every_validation_error_is_typed_and_changes_nothing() {
    let mut reg = registry(config());
    let long = "x".repeat(129);
    let cases: Vec<(HeartbeatRequest, Field)> = vec![
        (req("", "u", "s"), Field::Room),
        (req(&long, "u", "s"), Field::Room),
        (req("r\u{0}", "u", "s"), Field::Room),
        (req("r", "", "s"), Field::User),
        (req("r", &long, "s"), Field::User),
        (req("r", "u\n", "s"), Field::User),
        (req("r", "u", ""), Field::Session),
        (req("r", "u", &long), Field::Session),
        (req("r", "u", "s\u{1b}"), Field::Session),
        (
            HeartbeatRequest {
                name: String::new(),
                ..req("r", "u", "s")
            },
            Field::Name,
        ),
        (
            HeartbeatRequest {
                name: "n".repeat(65),
                ..req("r", "u", "s")
            },
            Field::Name,
        ),
        (
            HeartbeatRequest {
                name: "a\u{7}b".into(),
                ..req("r", "u", "s")
            },
            Field::Name,
        ),
        (
            HeartbeatRequest {
                state: Some(json!({ "big": "x".repeat(5000) })),
                ..req("r", "u", "s")
            },
            Field::State,
        ),
    ];
    for (request, field) in cases {
        match reg.heartbeat(&request, T0) {
            Err(PresenceError::InvalidInput { field: f, reason }) => {
                assert_eq!(f, field, "{request:?}");
                assert!(!reason.is_empty());
            }
            other => panic!("{request:?} gave {other:?}"),
        }
    }
    assert_eq!(reg.session_count(), 0);
    assert_eq!(reg.room_count(), 0);

    let a = reg.heartbeat(&req("r", "u", "s"), T0).unwrap();
    assert!(matches!(
        reg.update_state(
            &a.token.to_hex(),
            json!({ "big": "x".repeat(5000) }),
            None,
            T0
        ),
        Err(PresenceError::InvalidInput {
            field: Field::State,
            ..
        })
    ));
    assert_eq!(reg.snapshot("r").users[0].sessions[0].state, None);
}

#[test]
fn a_full_room_says_so_and_others_still_join() {
    let mut reg = registry(PresenceConfig {
        max_sessions_per_room: 2,
        ..config()
    });
    reg.heartbeat(&req("r1", "a", "s1"), T0).unwrap();
    let b = reg.heartbeat(&req("r1", "b", "s2"), T0).unwrap();
    assert_eq!(
        reg.heartbeat(&req("r1", "c", "s3"), T0).map(|_| ()),
        Err(PresenceError::RoomFull {
            room: "r1".into(),
            limit: 2
        })
    );
    // Existing sessions keep heartbeating; other rooms are unaffected.
    reg.heartbeat(&again(req("r1", "b", "s2"), b.token), T0 + 1)
        .unwrap();
    reg.heartbeat(&req("r2", "c", "s3"), T0).unwrap();
    assert_eq!(reg.snapshot("r1").users.len(), 2);
}

#[test]
fn a_restarted_client_rejoins_with_its_stale_token() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let mut fresh = registry(config()); // the server restarted: memory is gone
    let hb = fresh
        .heartbeat(&again(req("r1", "ann", "s1"), a.token), T0)
        .unwrap();
    assert!(hb.joined);
    assert_eq!(hb.token, a.token, "the client keeps the token it holds");
}

#[test]
fn closing_the_last_subscription_of_a_session_starts_its_grace() {
    let mut reg = registry(config()); // grace 1 s
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let token = a.token.to_hex();
    let (k1, _, _rx1) = reg.subscribe("r1", Some(&token), None).unwrap();
    let (k2, _, _rx2) = reg.subscribe("r1", Some(&token), None).unwrap();
    reg.unsubscribe(&k1, T0 + 100);
    reg.expire_due(T0 + 2_000);
    assert!(
        reg.snapshot("r1").users[0].online,
        "another subscription still holds it"
    );

    reg.unsubscribe(&k2, T0 + 2_000);
    assert_eq!(reg.next_deadline(), Some(T0 + 3_000));
    // Resubscribing within the grace keeps the session.
    let (k3, _, _rx3) = reg.subscribe("r1", Some(&token), None).unwrap();
    reg.expire_due(T0 + 3_000);
    assert!(reg.snapshot("r1").users[0].online);
    // A heartbeat also clears it.
    reg.unsubscribe(&k3, T0 + 4_000);
    reg.heartbeat(&again(req("r1", "ann", "s1"), a.token), T0 + 4_500)
        .unwrap();
    reg.expire_due(T0 + 5_000);
    assert!(reg.snapshot("r1").users[0].online);
    // Without either, the session ends at the grace deadline, long before its timeout.
    let (k4, _, _rx4) = reg.subscribe("r1", Some(&token), None).unwrap();
    reg.unsubscribe(&k4, T0 + 6_000);
    reg.expire_due(T0 + 6_999);
    assert!(reg.snapshot("r1").users[0].online);
    reg.expire_due(T0 + 7_000);
    let user = &reg.snapshot("r1").users[0];
    assert!(!user.online);
    assert_eq!(user.last_seen, Some(T0 + 4_500));
}

#[test]
fn admin_removals_notify_and_invalidate_tokens() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    reg.heartbeat(&req("r1", "bob", "s2"), T0).unwrap();
    reg.heartbeat(&req("r2", "ann", "s3"), T0).unwrap();
    let mut watch = Watch::new(&mut reg, "r1");
    assert_eq!(reg.list_user("ann"), ["r1", "r2"]);
    assert!(reg.remove_room_user("r1", "ann"));
    assert!(!reg.remove_room_user("r1", "ann"));
    assert_eq!(reg.list_user("ann"), ["r2"]);
    assert_eq!(
        reg.disconnect(&a.token.to_hex(), None, T0),
        Err(PresenceError::InvalidSessionToken)
    );
    assert!(reg.remove_room("r1"));
    assert!(reg.snapshot("r1").users.is_empty());
    assert_eq!(kinds(&watch.drain()), ["removed", "removed"]);
    assert_eq!(reg.session_count(), 1);
}

#[test]
fn a_snapshot_plus_the_diffs_after_it_equals_a_later_snapshot() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "a", "s1"), T0).unwrap();
    let (_key, snapshot, mut rx) = reg.subscribe("r1", None, None).unwrap();
    let RoomMessage::Snapshot(snapshot) = snapshot.message().clone() else {
        panic!("a subscription starts with a snapshot")
    };
    let mut view = crate::RoomView::from_snapshot(snapshot);
    let b = reg.heartbeat(&req("r1", "b", "s2"), T0 + 1).unwrap();
    // b's second and third tabs: each diff names one of b's tabs, and the view keeps the others.
    let b2 = reg.heartbeat(&req("r1", "b", "s6"), T0 + 1).unwrap();
    reg.heartbeat(&req("r1", "b", "s7"), T0 + 1).unwrap();
    reg.heartbeat(&req("r1", "c", "s3"), T0 + 2).unwrap();
    reg.update_state(&b.token.to_hex(), json!({"typing": true}), None, T0 + 3)
        .unwrap();
    reg.disconnect(&b2.token.to_hex(), None, T0 + 3).unwrap();
    reg.update_state(&b.token.to_hex(), json!({"typing": false}), None, T0 + 3)
        .unwrap();
    let mut catch_up = |view: &mut crate::RoomView, reg: &Registry| {
        while let Ok(m) = rx.try_recv() {
            assert_eq!(
                view.apply(m.message().clone()),
                crate::room_view::Applied::Changed
            );
        }
        assert_eq!(view.users(), reg.snapshot("r1").users.as_slice());
        assert_eq!(view.seq(), reg.snapshot("r1").seq);
    };
    catch_up(&mut view, &reg);
    let tabs: Vec<&str> = (view.user("b").unwrap().sessions.iter())
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(tabs, ["s2", "s7"]);
    reg.disconnect(&a.token.to_hex(), None, T0 + 4).unwrap();
    reg.heartbeat(&req("r1", "a", "s4"), T0 + 5).unwrap();
    reg.expire_due(T0 + 26_000);
    catch_up(&mut view, &reg);
}

#[test]
fn an_invalid_change_to_a_live_session_is_refused_and_changes_nothing() {
    let mut reg = registry(config());
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let mut watch = Watch::new(&mut reg, "r1");
    let before = reg.snapshot("r1");
    let mut long_name = again(req("r1", "ann", "s1"), a.token);
    long_name.name = "n".repeat(65);
    assert!(matches!(
        reg.heartbeat(&long_name, T0 + 1),
        Err(PresenceError::InvalidInput {
            field: Field::Name,
            ..
        })
    ));
    let mut big_state = again(req("r1", "ann", "s1"), a.token);
    big_state.state = Some(json!({ "big": "x".repeat(5000) }));
    assert!(matches!(
        reg.heartbeat(&big_state, T0 + 1),
        Err(PresenceError::InvalidInput {
            field: Field::State,
            ..
        })
    ));
    assert_eq!(reg.snapshot("r1"), before);
    assert!(watch.drain().is_empty());
    // The refused heartbeats did not extend the session either.
    reg.expire_due(T0 + 25_000);
    assert!(!reg.snapshot("r1").users[0].online);
}

#[test]
fn a_chatty_session_is_rate_limited_with_a_retry_time_and_nothing_changes() {
    let mut reg = registry(PresenceConfig {
        session_rate: RateLimit {
            per_second: 2.0,
            burst: 2,
        },
        ..config()
    });
    let a = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let token = a.token.to_hex();
    reg.update_state(&token, json!({"n": 1}), None, T0).unwrap();
    reg.update_state(&token, json!({"n": 2}), None, T0).unwrap();
    assert_eq!(
        reg.update_state(&token, json!({"n": 3}), None, T0),
        Err(PresenceError::TooManyRequests {
            retry_after_ms: 500
        })
    );
    assert_eq!(
        reg.heartbeat(&again(req("r1", "ann", "s1"), a.token), T0 + 100)
            .map(|_| ()),
        Err(PresenceError::TooManyRequests {
            retry_after_ms: 400
        })
    );
    let state = &reg.snapshot("r1").users[0].sessions[0].state;
    assert_eq!(
        state,
        &Some(json!({"n": 2})),
        "the refused update changed nothing"
    );
    // Later, it may go on.
    reg.update_state(&token, json!({"n": 4}), None, T0 + 500)
        .unwrap();
    // Disconnect is never rate limited: a tab must always be able to leave.
    reg.update_state(&token, json!({"n": 5}), None, T0 + 500)
        .unwrap_err();
    reg.disconnect(&token, None, T0 + 500).unwrap();
}

#[test]
fn users_are_capped_in_sessions_and_rooms() {
    let mut reg = registry(PresenceConfig {
        max_sessions_per_user: 3,
        max_rooms_per_user: 2,
        ..config()
    });
    reg.heartbeat(&req("r1", "ann", "a1"), T0).unwrap();
    reg.heartbeat(&req("r2", "ann", "a2"), T0).unwrap();
    assert_eq!(
        reg.heartbeat(&req("r3", "ann", "a3"), T0).map(|_| ()),
        Err(PresenceError::TooManyRooms { limit: 2 })
    );
    let third = reg.heartbeat(&req("r1", "ann", "a3"), T0).unwrap();
    assert_eq!(
        reg.heartbeat(&req("r2", "ann", "a4"), T0).map(|_| ()),
        Err(PresenceError::TooManySessions { limit: 3 })
    );
    // Others are not affected; leaving frees a place.
    reg.heartbeat(&req("r3", "bob", "b1"), T0).unwrap();
    reg.disconnect(&third.token.to_hex(), None, T0).unwrap();
    reg.heartbeat(&req("r2", "ann", "a4"), T0).unwrap();
    assert_eq!(reg.list_user("ann"), ["r1", "r2"]);
}

#[test]
fn acting_as_a_user_only_reaches_that_users_sessions() {
    let mut reg = registry(config());
    let ann = reg.heartbeat(&req("r1", "ann", "s1"), T0).unwrap();
    let token = ann.token.to_hex();
    let mut watch = Watch::new(&mut reg, "r1");
    let forbidden = |r: Result<(), PresenceError>| {
        assert!(matches!(r, Err(PresenceError::Forbidden { .. })), "{r:?}");
    };
    forbidden(reg.update_state(&token, json!({"x": 1}), Some("bob"), T0));
    forbidden(reg.disconnect(&token, Some("bob"), T0));
    forbidden(reg.subscribe("r1", Some(&token), Some("bob")).map(|_| ()));
    assert!(watch.drain().is_empty(), "nothing happened");
    assert!(reg.snapshot("r1").users[0].online);
    reg.update_state(&token, json!({"x": 1}), Some("ann"), T0)
        .unwrap();
    reg.disconnect(&token, Some("ann"), T0).unwrap();
    assert!(!reg.snapshot("r1").users[0].online);
}
