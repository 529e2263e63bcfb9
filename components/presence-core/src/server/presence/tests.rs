//! The engine with its scheduler, on a manual clock: expiry without anyone calling in.

use super::*;
use crate::server::ManualClock;
use crate::wire::RoomMessage;
use std::time::Duration;

const T0: u64 = 1_700_000_000_000;

fn req(room: &str, user: &str, session: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        room: room.into(),
        user: user.into(),
        session: session.into(),
        name: user.into(),
        interval_ms: Some(10_000),
        state: None,
        away: false,
        session_token: None,
    }
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

#[tokio::test]
async fn the_scheduler_expires_sessions_when_the_clock_passes_their_deadline() {
    let clock = ManualClock::new(T0);
    let presence = Presence::start_with_clock(PresenceConfig::default(), clock.clone());
    let hb = presence.heartbeat(&req("r1", "ann", "s1")).unwrap();
    let mut sub = presence.subscribe(&hb.room_token, None).unwrap();
    assert!(matches!(next(&mut sub).await, RoomMessage::Snapshot(_)));

    clock.advance(24_999);
    nothing_within(&mut sub, 50).await;
    clock.advance(1);
    match next(&mut sub).await {
        RoomMessage::Left { reason, user, .. } => {
            assert_eq!(reason, crate::wire::LeaveReason::Expired);
            assert!(!user.online);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_deadline_earlier_than_the_one_slept_on_wakes_the_scheduler() {
    let clock = ManualClock::new(T0);
    let presence = Presence::start_with_clock(PresenceConfig::default(), clock.clone());
    let mut slow = req("r1", "slow", "s1");
    slow.interval_ms = Some(300_000);
    let hb = presence.heartbeat(&slow).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // scheduler now sleeps until +750 s
    let mut fast = req("r1", "fast", "s2");
    fast.interval_ms = Some(1_000);
    presence.heartbeat(&fast).unwrap();
    let mut sub = presence.subscribe(&hb.room_token, None).unwrap();
    next(&mut sub).await;
    clock.advance(2_500);
    match next(&mut sub).await {
        RoomMessage::Left { user, .. } => assert_eq!(user.user_id, "fast"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_subscriber_gets_exactly_one_event_for_a_join_and_none_for_a_heartbeat() {
    let clock = ManualClock::new(T0);
    let presence = Presence::start_with_clock(PresenceConfig::default(), clock.clone());
    let token = presence.room_token("r1").unwrap();
    let mut sub = presence.subscribe(&token, None).unwrap();
    assert!(matches!(next(&mut sub).await, RoomMessage::Snapshot(s) if s.users.is_empty()));
    let hb = presence.heartbeat(&req("r1", "ann", "s1")).unwrap();
    assert!(matches!(
        next(&mut sub).await,
        RoomMessage::Joined { seq: 1, .. }
    ));
    for _ in 0..10 {
        clock.advance(5_000);
        let mut again = req("r1", "ann", "s1");
        again.session_token = Some(hb.session_token.clone());
        presence.heartbeat(&again).unwrap();
    }
    nothing_within(&mut sub, 100).await;
}

#[tokio::test]
async fn a_slow_subscriber_is_resynced_and_does_not_hold_back_others() {
    let clock = ManualClock::new(T0);
    let presence = Presence::start_with_clock(
        PresenceConfig {
            subscriber_buffer: 4,
            ..PresenceConfig::default()
        },
        clock,
    );
    let token = presence.room_token("r1").unwrap();
    let mut slow = presence.subscribe(&token, None).unwrap();
    let mut fast = presence.subscribe(&token, None).unwrap();
    next(&mut slow).await;
    next(&mut fast).await;
    for i in 0..20 {
        presence
            .heartbeat(&req("r1", &format!("u{i}"), &format!("s{i}")))
            .unwrap();
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
    presence.heartbeat(&req("r1", "late", "s-late")).unwrap();
    assert!(matches!(
        next(&mut slow).await,
        RoomMessage::Joined { seq: 21, .. }
    ));
}

#[tokio::test]
async fn dropping_a_session_subscription_ends_the_session_after_the_grace() {
    let clock = ManualClock::new(T0);
    let presence = Presence::start_with_clock(
        PresenceConfig {
            subscription_grace_ms: 2_000,
            ..PresenceConfig::default()
        },
        clock.clone(),
    );
    let hb = presence.heartbeat(&req("r1", "ann", "s1")).unwrap();
    let tab = presence
        .subscribe(&hb.room_token, Some(&hb.session_token))
        .unwrap();
    let mut watcher = presence.subscribe(&hb.room_token, None).unwrap();
    next(&mut watcher).await;
    drop(tab);
    clock.advance(1_999);
    nothing_within(&mut watcher, 50).await;
    clock.advance(1);
    assert!(matches!(next(&mut watcher).await, RoomMessage::Left { .. }));
}

#[tokio::test]
async fn list_needs_a_genuine_room_token() {
    let presence = Presence::start(PresenceConfig::default());
    let hb = presence.heartbeat(&req("r1", "ann", "s1")).unwrap();
    assert_eq!(presence.list(&hb.room_token).unwrap().users.len(), 1);
    let other = Presence::start(PresenceConfig::default());
    assert_eq!(
        other.list(&hb.room_token).map(|_| ()),
        Err(PresenceError::InvalidRoomToken),
        "another server's random key"
    );
    let forged = hb.room_token.replacen(&hb.room_token[..1], "0", 1);
    if forged != hb.room_token {
        assert_eq!(
            presence.list(&forged).map(|_| ()),
            Err(PresenceError::InvalidRoomToken)
        );
    }
    let shared = PresenceConfig {
        room_token_secret: Some(b"shared".to_vec()),
        ..PresenceConfig::default()
    };
    let a = Presence::start(shared.clone());
    let b = Presence::start(shared);
    let hb = a.heartbeat(&req("r1", "ann", "s1")).unwrap();
    assert!(
        b.list(&hb.room_token).is_ok(),
        "servers sharing a secret accept each other's"
    );
}

#[tokio::test]
async fn the_scheduler_stops_when_the_engine_is_dropped() {
    let presence = Presence::start(PresenceConfig::default());
    let weak = Arc::downgrade(&presence.inner);
    drop(presence);
    assert!(weak.upgrade().is_none());
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn subscribers_arriving_between_changes_share_one_serialized_snapshot() {
    let presence = Presence::start(PresenceConfig::default());
    let hb = presence.heartbeat(&req("r1", "ann", "s1")).unwrap();
    let mut a = presence.subscribe(&hb.room_token, None).unwrap();
    let mut b = presence.subscribe(&hb.room_token, None).unwrap();
    let (first_a, first_b) = (a.next().await, b.next().await);
    assert!(Arc::ptr_eq(&first_a, &first_b), "one snapshot for both");
    assert_eq!(first_a.json(), first_b.json());
    presence.heartbeat(&req("r1", "bob", "s2")).unwrap();
    let mut c = presence.subscribe(&hb.room_token, None).unwrap();
    let first_c = c.next().await;
    assert!(!Arc::ptr_eq(&first_a, &first_c), "a change makes a new one");
    match first_c.message() {
        RoomMessage::Snapshot(s) => assert_eq!((s.seq, s.users.len()), (2, 2)),
        other => panic!("{other:?}"),
    }
    // And the earlier subscribers get the change as a diff, not a snapshot.
    assert!(matches!(
        next(&mut a).await,
        RoomMessage::Joined { seq: 2, .. }
    ));
}
