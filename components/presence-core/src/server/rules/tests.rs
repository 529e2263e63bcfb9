//! The rules on their own, without a store (the behaviour suite runs them through both stores,
//! and the differential test checks that the stores agree).

use super::*;
use crate::server::test_support::req;
use serde_json::json;

fn config() -> PresenceConfig {
    PresenceConfig::default()
}

fn joined(user: &mut UserFacts, session: &str, name: &str, now: u64, seq: u64) -> bool {
    let mut request = req("r", "u", session);
    request.name = name.into();
    join(user, new_session(&request, name, now, seq), now)
}

#[test]
fn the_offline_cap_drops_the_longest_gone_and_among_equals_the_greatest_id() {
    let offline = [("bob", 20), ("amy", 10), ("cat", 10), ("dan", 30)];
    assert_eq!(offline_victim(offline), Some("cat"));
    assert_eq!(offline_victim([("amy", 10)]), Some("amy"));
    assert_eq!(offline_victim(std::iter::empty::<(&str, u64)>()), None);
    let cap = config().max_offline_users_per_room;
    assert!(!over_offline_cap(cap, &config()));
    assert!(over_offline_cap(cap + 1, &config()));
}

#[test]
fn a_user_comes_online_with_its_first_session_and_is_ordered_by_it() {
    let mut user = UserFacts::unlisted();
    assert!(joined(&mut user, "s1", "Ann", 1_000, 7));
    assert_eq!((user.online_since, user.last_seen), (7, None));
    // A second tab: not "coming online" again, and the order key stays.
    assert!(!joined(&mut user, "s2", "Ann B.", 2_000, 9));
    assert_eq!(user.online_since, 7);
    assert_eq!(user.name, "Ann B.");
    assert_eq!(user.last_active, 2_000);
    let ids: Vec<&str> = user.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2"]);
}

#[test]
fn leaving_keeps_the_latest_name_and_the_last_session_sets_last_seen() {
    let config = config();
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    joined(&mut user, "s2", "Ann B.", 2_000, 2);
    user.session_mut("s1").unwrap().name = "Ann A.".into();
    // Leaving the newer session: the name is the remaining (latest) session's.
    let left = leave(&mut user, "s2", 5_000, LeaveReason::Expired, 9_000, &config);
    assert_eq!(
        left,
        Some(Left {
            shown: true,
            retained_until: None,
            forgotten: false,
        })
    );
    assert_eq!(user.name, "Ann A.");
    assert_eq!(user.last_active, 5_000);
    // An expiry: last seen at the last activity (its heartbeats), not when noticed.
    let left = leave(&mut user, "s1", 4_000, LeaveReason::Expired, 9_000, &config).unwrap();
    assert_eq!(user.last_seen, Some(5_000));
    assert_eq!(
        left.retained_until,
        Some(5_000 + config.offline_retention_ms)
    );
    assert!(leave(&mut user, "s1", 0, LeaveReason::Expired, 9_000, &config).is_none());

    // A goodbye: last seen now.
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    leave(
        &mut user,
        "s1",
        1_500,
        LeaveReason::Disconnected,
        3_000,
        &config,
    );
    assert_eq!(user.last_seen, Some(3_000));
    // Back online: ordered after those online now, no longer "last seen".
    assert!(joined(&mut user, "s3", "Ann", 4_000, 12));
    assert_eq!((user.online_since, user.last_seen), (12, None));
}

#[test]
fn caps_are_checked_rooms_then_sessions_then_room_size_and_zero_allows_none() {
    let config = PresenceConfig::default()
        .max_rooms_per_user(2)
        .max_sessions_per_user(3)
        .max_sessions_per_room(4);
    let held = |rooms, here, sessions| Holdings {
        rooms,
        here,
        sessions,
    };
    assert!(check_join(&config, "r", 3, held(1, true, 2), P).is_ok());
    assert!(matches!(
        check_join(&config, "r", 4, held(2, false, 3), P),
        Err(PresenceError::TooManyRooms { limit: 2 })
    ));
    // Already in this room: another tab there is not another room.
    assert!(matches!(
        check_join(&config, "r", 4, held(2, true, 3), P),
        Err(PresenceError::TooManySessions { limit: 3 })
    ));
    assert!(matches!(
        check_join(&config, "r", 4, held(2, true, 2), P),
        Err(PresenceError::RoomFull { limit: 4, .. })
    ));
    let none = PresenceConfig::default().max_rooms_per_user(0);
    assert!(matches!(
        check_join(&none, "r", 0, Holdings::default(), P),
        Err(PresenceError::TooManyRooms { limit: 0 })
    ));
    // An agent is held to the room's cap only.
    let agent = PresenceKind::Agent;
    assert!(check_join(&config, "r", 3, held(9, false, 9), agent).is_ok());
    assert!(check_join(&none, "r", 0, Holdings::default(), agent).is_ok());
    assert!(matches!(
        check_join(&config, "r", 4, held(0, false, 0), agent),
        Err(PresenceError::RoomFull { limit: 4, .. })
    ));
}

const P: PresenceKind = PresenceKind::Person;

#[test]
fn a_proposed_token_is_adopted_only_if_random_looking_and_free() {
    let proposal = SessionToken::generate();
    assert_eq!(session_token(Some(proposal), |_| false), proposal);
    assert_ne!(session_token(Some(proposal), |_| true), proposal);
    let weak = SessionToken::parse(&"0".repeat(64)).unwrap();
    assert!(!weak.looks_random());
    assert_ne!(session_token(Some(weak), |_| false), weak);
}

#[test]
fn a_heartbeat_changes_only_what_differs_and_validates_only_that() {
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    let current = user.session("s1").unwrap().clone();
    let mut same = req("r", "u", "s1");
    same.name = "  Ann ".into(); // stored trimmed
    assert!(heartbeat_change(&current, &same, 0).unwrap().is_empty());
    // JSON null clears a state only if there is one.
    same.state = Some(Value::Null);
    assert!(heartbeat_change(&current, &same, 0).unwrap().is_empty());
    let mut changed = same.clone();
    changed.away = true;
    changed.state = Some(json!({"typing": true}));
    let change = heartbeat_change(&current, &changed, 0).unwrap();
    assert_eq!(change.away, Some(true));
    assert!(apply(&mut user, "s1", change));
    let s = user.session("s1").unwrap();
    assert!(s.away);
    assert_eq!(s.state.as_deref(), Some(&json!({"typing": true})));
    // A new name that is not valid is refused; nothing is applied.
    let mut bad = req("r", "u", "s1");
    bad.name = " ".into();
    assert!(matches!(
        heartbeat_change(user.session("s1").unwrap(), &bad, 0),
        Err(PresenceError::InvalidInput { .. })
    ));
    // A rename names the user too.
    let mut renamed = req("r", "u", "s1");
    renamed.name = "Ann B.".into();
    renamed.away = true;
    let change = heartbeat_change(user.session("s1").unwrap(), &renamed, 0).unwrap();
    assert!(apply(&mut user, "s1", change));
    assert_eq!(user.name, "Ann B.");
    assert!(!apply(&mut user, "s1", Change::default()));
}

#[test]
fn a_users_status_is_online_anywhere_or_the_latest_last_seen() {
    let config = config();
    let mut here = UserFacts::unlisted();
    joined(&mut here, "s1", "Ann", 1_000, 1);
    let mut there = UserFacts::unlisted();
    joined(&mut there, "s2", "Ann", 1_000, 1);
    leave(
        &mut there,
        "s2",
        0,
        LeaveReason::Disconnected,
        5_000,
        &config,
    );
    assert!(user_status("ann", [&here, &there]).online);
    assert_eq!(user_status("ann", [&here, &there]).last_seen, None);
    leave(
        &mut here,
        "s1",
        0,
        LeaveReason::Disconnected,
        9_000,
        &config,
    );
    let status = user_status("ann", [&here, &there]);
    assert!(!status.online);
    assert_eq!(status.last_seen, Some(9_000));
    assert_eq!(user_status("nobody", []).last_seen, None);
    // Bad input: a typed error.
    let many: Vec<String> = (0..=MAX_STATUS_LOOKUP).map(|i| format!("u{i}")).collect();
    assert!(matches!(
        check_status_lookup(&many),
        Err(PresenceError::BadRequest { .. })
    ));
    assert!(matches!(
        check_status_lookup(&[String::new()]),
        Err(PresenceError::InvalidInput { .. })
    ));
    assert!(check_status_lookup(&many[..10]).is_ok());
}

#[test]
fn the_first_session_in_occupies_a_room_and_the_last_out_vacates_it() {
    assert_eq!(occupancy(0, 1), Some(Occupancy::Occupied));
    assert_eq!(occupancy(1, 2), None);
    assert_eq!(occupancy(2, 1), None);
    assert_eq!(occupancy(1, 0), Some(Occupancy::Vacated));
    assert_eq!(
        occupancy(3, 0),
        Some(Occupancy::Vacated),
        "a user with 3 tabs removed"
    );
    assert_eq!(occupancy(0, 0), None, "an offline user dropped");
}

/// Facts that still hold a session the store lost (Redis evicted its key): joining it again
/// replaces it, so the room lists it once, and a diff and the snapshot agree.
#[test]
fn a_session_joining_again_over_stale_facts_is_listed_once() {
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    joined(&mut user, "s2", "Ann", 1_000, 2);
    assert!(
        !joined(&mut user, "s1", "Ann B.", 2_000, 7),
        "still online through s2"
    );
    let ids: Vec<&str> = user.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s2", "s1"]);
    assert_eq!(user.session("s1").unwrap().joined_seq, 7);
    // The only session, stale: the user comes online again with it.
    let mut alone = UserFacts::unlisted();
    joined(&mut alone, "s1", "Ann", 1_000, 1);
    assert!(joined(&mut alone, "s1", "Ann", 2_000, 9));
    assert_eq!((alone.sessions.len(), alone.online_since), (1, 9));
    // A stale invisible one too.
    let mut hidden = UserFacts::unlisted();
    join_hidden(
        &mut hidden,
        new_session(&req("r", "u", "s1"), "Ann", 1_000, 1),
    );
    joined(&mut hidden, "s1", "Ann", 2_000, 3);
    assert_eq!((hidden.sessions.len(), hidden.hidden.len()), (1, 0));
}

/// A user with three tabs, each with a kilobyte of state: a change of one tab sends that tab
/// and the user's head, not the other two (whose state would be most of the bytes).
#[test]
fn a_diff_carries_the_one_session_that_changed_not_the_users_others() {
    let mut user = UserFacts::unlisted();
    for (seq, id) in [(1, "tab-1"), (2, "tab-2"), (3, "tab-3")] {
        joined(&mut user, id, "Ann", 1_000, seq);
        user.session_mut(id).unwrap().state = Some(Box::new(json!({ "notes": id.repeat(200) })));
    }
    let whole = serde_json::to_string(&user.presence("ann")).unwrap().len();
    for event in [
        Event::Joined {
            session: "tab-2".into(),
        },
        Event::Updated {
            session: "tab-2".into(),
        },
    ] {
        let diff = serde_json::to_string(&message(&event, 4, "ann", Some(&user))).unwrap();
        assert!(diff.contains("tab-2tab-2"), "{diff}");
        assert!(!diff.contains("tab-1") && !diff.contains("tab-3"), "{diff}");
        assert!(
            diff.len() * 2 < whole,
            "{} bytes against the whole user's {whole}",
            diff.len()
        );
    }
    let left = Event::Left {
        session: "tab-2".into(),
        reason: LeaveReason::Disconnected,
    };
    let diff = serde_json::to_string(&message(&left, 4, "ann", Some(&user))).unwrap();
    assert!(
        diff.len() < 300,
        "a leave names the session, nothing of the tabs: {diff}"
    );
}

#[test]
fn every_change_is_one_message_with_the_user_after_it() {
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    let joined = message(
        &Event::Joined {
            session: "s1".into(),
        },
        1,
        "ann",
        Some(&user),
    );
    let RoomMessage::Joined {
        seq,
        session_id,
        user: shown,
        session,
    } = joined
    else {
        panic!("{joined:?}");
    };
    assert_eq!((seq, session_id.as_str()), (1, "s1"));
    // The user's head and the one session, which make the user whole.
    assert_eq!(shown.with_sessions(vec![session]), user.presence("ann"));
    assert_eq!(
        message(&Event::Removed, 5, "ann", None),
        RoomMessage::Removed {
            seq: 5,
            user_id: "ann".into()
        }
    );
    assert_eq!(session_deadline(100, None), 100);
    assert_eq!(session_deadline(100, Some(50)), 50);
    assert_eq!(session_deadline(100, Some(150)), 100);
}

#[test]
fn facts_round_trip_through_json_and_stay_small() {
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    let json = serde_json::to_string(&user).unwrap();
    assert_eq!(serde_json::from_str::<UserFacts>(&json).unwrap(), user);
    assert!(json.len() < 80, "{json}");
}

#[test]
fn a_goodbye_ends_the_session_after_the_leave_grace_as_a_disconnect_at_the_goodbye() {
    let config = PresenceConfig::default().leave_grace_ms(1_500);
    assert_eq!(goodbye_deadline(10_000, &config), 11_500);
    // A subscription's grace and a goodbye's: the earlier holds.
    assert_eq!(earlier_grace(None, 11_500), 11_500);
    assert_eq!(earlier_grace(Some(9_000), 11_500), 9_000);
    assert_eq!(earlier_grace(Some(15_000), 11_500), 11_500);
    assert_eq!(
        ending(Some(10_000), 11_500),
        (LeaveReason::Disconnected, 10_000)
    );
    assert_eq!(ending(None, 11_500), (LeaveReason::Expired, 11_500));
    // A heartbeat takes a grace back unless the grace was set after it arrived.
    assert!(takes_back_grace(None, 5));
    assert!(takes_back_grace(Some(5), 5));
    assert!(!takes_back_grace(Some(6), 5));
    // Ended as a disconnect at the goodbye: last seen then, not when the grace ran out.
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    let (reason, at) = ending(Some(10_000), 11_500);
    leave(&mut user, "s1", 9_000, reason, at, &config);
    assert_eq!(user.last_seen, Some(10_000));
}

#[test]
fn idle_flips_once_each_way_and_keeps_when_it_began() {
    let mut user = UserFacts::unlisted();
    joined(&mut user, "s1", "Ann", 1_000, 1);
    let mut idle = req("r", "u", "s1");
    idle.name = "Ann".into();
    idle.idle_for_ms = Some(300_000);
    let change = heartbeat_change(user.session("s1").unwrap(), &idle, 400_000).unwrap();
    assert_eq!(change.idle, Some(Some(100_000)));
    assert!(apply(&mut user, "s1", change));
    let shown = user.presence("u");
    assert!(shown.idle && !shown.away);
    assert_eq!(shown.status_label(), "idle");
    assert_eq!(shown.idle_since(), Some(100_000));
    // Idle again, later: no change; the start stays.
    idle.idle_for_ms = Some(310_000);
    assert!(
        heartbeat_change(user.session("s1").unwrap(), &idle, 410_000)
            .unwrap()
            .is_empty()
    );
    // A second, active tab: the user is not idle.
    joined(&mut user, "s2", "Ann", 420_000, 2);
    assert!(!user.presence("u").idle);
    // Active again.
    idle.idle_for_ms = None;
    let change = heartbeat_change(user.session("s1").unwrap(), &idle, 420_000).unwrap();
    assert_eq!(change.idle, Some(None));
}

#[test]
fn invisible_sessions_change_nothing_others_see_until_shown() {
    let config = config();
    let hidden = |id: &str| new_session(&req("r", "eve", id), "Eve", 1_000, 1);
    // Never listed: joining and leaving invisibly leaves no trace.
    let mut eve = UserFacts::unlisted();
    join_hidden(&mut eve, hidden("h1"));
    assert!(!eve.is_listed() && eve.has_sessions() && eve.is_hidden("h1"));
    assert!(snapshot("r", 1, [("eve", &eve)]).users.is_empty());
    let change = heartbeat_change(
        eve.session("h1").unwrap(),
        &req("r", "eve", "h1").away(true),
        2_000,
    )
    .unwrap();
    assert!(apply(
        &mut eve,
        "h1",
        Change {
            name: Some("Eva".into()),
            ..change
        }
    ));
    assert_eq!(
        eve.name, "",
        "an invisible session's change is nobody's business"
    );
    let left = leave(&mut eve, "h1", 9_000, LeaveReason::Expired, 9_000, &config).unwrap();
    assert_eq!(
        left,
        Left {
            shown: false,
            retained_until: None,
            forgotten: true
        }
    );
    // Shown: a join at the seq it is shown at; hidden again: offline, last seen then.
    let mut eve = UserFacts::unlisted();
    join_hidden(&mut eve, hidden("h1"));
    assert_eq!(reveal(&mut eve, "h1", 5_000, 7), Some(true));
    assert_eq!((eve.online_since, eve.sessions[0].joined_at), (7, 5_000));
    assert_eq!(snapshot("r", 7, [("eve", &eve)]).users.len(), 1);
    // Hidden again: offline as after a leave, kept until its retention runs out, as if its
    // invisible session were not there.
    assert_eq!(
        hide(&mut eve, "h1", 6_000, &config),
        Some(Some(6_000 + config.offline_retention_ms))
    );
    assert_eq!(eve.last_seen, Some(6_000));
    assert!(!eve.is_online() && eve.is_listed());
    assert_eq!(eve.offline_since(), Some(6_000));
    // Its retention ends while it is there invisibly: unlisted, its facts stay.
    let mut unlisted = eve.clone();
    assert!(unlist(&mut unlisted));
    assert!(!unlisted.is_listed() && unlisted.has_sessions());
    // Its end changes nothing others see: still offline, retained as it was.
    let left = leave(&mut eve, "h1", 9_000, LeaveReason::Expired, 9_000, &config).unwrap();
    assert_eq!(
        left,
        Left {
            shown: false,
            retained_until: None,
            forgotten: false
        }
    );
    let mut gone = eve.clone();
    assert!(!unlist(&mut gone), "no session left: its facts go");
    assert_eq!(
        eve.last_seen,
        Some(6_000),
        "its heartbeats were not activity shown"
    );
    assert!(reveal(&mut eve, "h1", 0, 0).is_none());
}

#[test]
fn a_user_is_shown_with_the_kind_of_its_latest_visible_session() {
    let config = config();
    let mut alice = UserFacts::unlisted();
    joined(&mut alice, "tab", "Alice", 1_000, 1);
    // An agent acting for her joins as her: the user shows as an agent while it is the latest.
    let agent = HeartbeatRequest::agent("r", "u", "bot", "Alice's agent", 30_000);
    join(
        &mut alice,
        new_session(&agent, "Alice's agent", 2_000, 2),
        2_000,
    );
    assert_eq!(alice.kind, PresenceKind::Agent);
    // It leaves (or hides): her tab is the latest again, and she is a person again.
    leave(
        &mut alice,
        "bot",
        3_000,
        LeaveReason::Disconnected,
        3_000,
        &config,
    );
    assert_eq!(
        (alice.kind, alice.name.as_str()),
        (PresenceKind::Person, "Alice")
    );
    join(
        &mut alice,
        new_session(&agent, "Alice's agent", 4_000, 3),
        4_000,
    );
    hide(&mut alice, "bot", 5_000, &config);
    assert_eq!(alice.kind, PresenceKind::Person);
}
