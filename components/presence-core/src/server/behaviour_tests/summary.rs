//! Summary subscriptions and automatic feeds, on every store.

use super::*;
use crate::wire::{RoomCounts, RoomSummary};

behaviour!(
    a_summary_counts_the_room_lists_the_first_k_and_follows_me,
    changes_within_a_window_are_one_summary,
    a_summary_subscription_holds_its_session_and_bad_input_changes_nothing,
    an_automatic_feed_is_full_in_a_small_room_and_a_summary_in_a_big_one,
);

async fn next_of(sub: &mut SummarySubscription) -> RoomMessage {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message within 5 s")
        .message()
        .clone()
}

async fn summary_of(sub: &mut SummarySubscription) -> RoomSummary {
    match next_of(sub).await {
        RoomMessage::Summary(s) => s,
        other => panic!("expected a summary, got {other:?}"),
    }
}

async fn next_in(feed: &mut Feed) -> RoomMessage {
    tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("a message within 5 s")
        .message()
        .clone()
}

async fn quiet(sub: &mut SummarySubscription, ms: u64) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(ms), sub.next()).await {
        panic!("expected nothing, got {:?}", m.message());
    }
}

fn ids(s: &RoomSummary) -> Vec<&str> {
    s.first
        .as_ref()
        .expect("the first users")
        .iter()
        .map(|u| u.user_id.as_str())
        .collect()
}

fn counts(users: u64, online: u64, away: u64, sessions: u64) -> RoomCounts {
    RoomCounts {
        users,
        online,
        away,
        sessions,
        ..RoomCounts::default()
    }
}

async fn a_summary_counts_the_room_lists_the_first_k_and_follows_me(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let ada = h.join("r1", "ada", "a1").await;
    let bob = h.join("r1", "bob", "b1").await;
    let cy = h.join("r1", "cy", "c1").await;
    h.join("r1", "cy", "c2").await;
    let dee = h.join("r1", "dee", "d1").await;
    h.presence.disconnect(&dee.session_token).await.unwrap();
    h.presence.set_away(&ada.session_token, true).await.unwrap();
    let options = SummaryOptions::default().k(2).me("cy");
    let mut sub = h
        .presence
        .subscribe_summary(&cy.room_token, Some(&cy.session_token), options)
        .await
        .unwrap();
    let first = summary_of(&mut sub).await;
    assert_eq!(first.counts, counts(4, 3, 1, 4));
    assert_eq!(ids(&first), ["ada", "bob"]);
    // Its own entry is already there: taken without waiting, for the same write.
    let me = sub.try_next().expect("me, right after the first summary");
    let RoomMessage::Me {
        seq,
        user: Some(me),
    } = me.message().clone()
    else {
        panic!("expected me");
    };
    assert_eq!(seq, first.seq);
    assert_eq!((me.user_id.as_str(), me.sessions.len()), ("cy", 2));
    assert!(sub.try_next().is_none(), "nothing else is waiting");

    // Its own change: a `me`, and no summary (nothing a summary shows changed).
    h.presence
        .update_state(&cy.session_token, json!({"typing": true}))
        .await
        .unwrap();
    let RoomMessage::Me { user: Some(me), .. } = next_of(&mut sub).await else {
        panic!("expected me");
    };
    assert_eq!(me.sessions[0].state, Some(json!({"typing": true})));
    quiet(&mut sub, 300).await;

    // One of the first two changes: the list comes again; only the counts otherwise.
    h.presence
        .set_away(&ada.session_token, false)
        .await
        .unwrap();
    let again = summary_of(&mut sub).await;
    assert_eq!(again.counts, counts(4, 3, 0, 4));
    assert_eq!(ids(&again), ["ada", "bob"]);
    h.join("r1", "eve", "e1").await;
    let counted = summary_of(&mut sub).await;
    assert_eq!(counted.counts, counts(5, 4, 0, 5));
    assert_eq!(counted.first, None, "the first two did not change");

    // A heartbeat that changes nothing sends nothing.
    h.presence
        .heartbeat(&req("r1", "bob", "b1").session_token(&bob.session_token))
        .await
        .unwrap();
    quiet(&mut sub, 300).await;
}

async fn changes_within_a_window_are_one_summary(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            // Long enough that 20 joins fit in two windows on a loaded machine.
            summary_window_ms: 1_000,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let ada = h.join("r2", "ada", "a1").await;
    let mut sub = h
        .presence
        .subscribe_summary(&ada.room_token, None, SummaryOptions::default())
        .await
        .unwrap();
    assert_eq!(summary_of(&mut sub).await.counts.users, 1);
    for i in 0..20 {
        h.join("r2", &format!("u{i:02}"), &format!("s{i}")).await;
    }
    // The first join may go out at once (after a quiet window); the rest wait for its end.
    let mut got = vec![summary_of(&mut sub).await];
    while got.last().unwrap().counts.users < 21 {
        got.push(summary_of(&mut sub).await);
    }
    assert!(
        got.len() <= 3,
        "20 joins in under a window: {} summaries",
        got.len()
    );
    let last = got.last().unwrap();
    assert_eq!(ids(last), ["ada", "u00", "u01", "u02", "u03"]);
    quiet(&mut sub, 1_200).await;
}

async fn a_summary_subscription_holds_its_session_and_bad_input_changes_nothing(kind: Kind) {
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
    let ann = h.join("r3", "ann", "s1").await;
    let other = h.join("r4", "bob", "s2").await;
    let options = SummaryOptions::default;
    // Bad input: typed errors, and no summarizer is left running.
    let bad = [
        (
            h.presence
                .subscribe_summary("nope.r3", None, options())
                .await
                .err(),
            PresenceError::InvalidRoomToken,
        ),
        (
            h.presence
                .subscribe_summary(&ann.room_token, Some(&other.session_token), options())
                .await
                .err(),
            PresenceError::InvalidSessionToken,
        ),
    ];
    for (got, want) in bad {
        assert_eq!(got, Some(want));
    }
    let bad_me = h
        .presence
        .subscribe_summary(&ann.room_token, None, options().me("x".repeat(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            bad_me,
            PresenceError::InvalidInput {
                field: Field::User,
                ..
            }
        ),
        "{bad_me:?}"
    );
    assert_eq!(h.presence.live_summarizers(), 0);

    // It holds the session: dropped, the session ends after the grace, not before.
    let tab = h
        .presence
        .subscribe_summary(&ann.room_token, Some(&ann.session_token), options())
        .await
        .unwrap();
    let mut watcher = h.watch(&ann.room_token).await;
    assert_eq!(h.presence.live_summarizers(), 1);
    drop(tab);
    settle().await;
    assert_eq!(
        h.presence.live_summarizers(),
        0,
        "the last one stops its summarizer"
    );
    h.advance(1_999).await;
    nothing_within(&mut watcher, 100).await;
    h.clock.advance(1);
    assert!(matches!(next(&mut watcher).await, RoomMessage::Left { .. }));
}

async fn an_automatic_feed_is_full_in_a_small_room_and_a_summary_in_a_big_one(kind: Kind) {
    let Some(h) = open(
        kind,
        PresenceConfig {
            summary_above: 4,
            summary_window_ms: 50,
            ..base_config()
        },
    )
    .await
    else {
        return;
    };
    let ada = h.join("r5", "ada", "a1").await;
    let mut feed = h
        .presence
        .feed(
            &ada.room_token,
            Some(&ada.session_token),
            None,
            View::Auto(SummaryOptions::default().k(2).me("ada")),
        )
        .await
        .unwrap();
    assert!(matches!(next_in(&mut feed).await, RoomMessage::Snapshot(_)));
    for i in 0..4 {
        h.join("r5", &format!("u{i}"), &format!("s{i}")).await;
    }
    // Full while the room lists at most 4; past that, a summary.
    let mut seen = Vec::new();
    loop {
        let m = next_in(&mut feed).await;
        if let RoomMessage::Summary(s) = &m {
            assert_eq!(s.counts.users, 5);
            assert_eq!(ids(s), ["ada", "u0"]);
            break;
        }
        seen.push(kind_of(&m));
    }
    assert!(feed.is_summary());
    // The join past the limit may come as a diff before the switch, never more.
    assert!(
        seen.len() >= 3 && seen.len() <= 4 && seen.iter().all(|k| *k == "joined"),
        "{seen:?}"
    );
    assert!(matches!(
        next_in(&mut feed).await,
        RoomMessage::Me { user: Some(_), .. }
    ));
    // Below half of it (2 listed), the full list again.
    for user in ["u0", "u1", "u2"] {
        h.presence.remove_room_user("r5", user).await.unwrap();
    }
    let mut last = None;
    for _ in 0..10 {
        let m = next_in(&mut feed).await;
        if let RoomMessage::Snapshot(s) = m {
            last = Some(s);
            break;
        }
    }
    let snapshot = last.expect("a snapshot once the room is small again");
    assert_eq!(
        users(&snapshot),
        [("ada".into(), true), ("u3".into(), true)]
    );
    assert!(!feed.is_summary());
}
