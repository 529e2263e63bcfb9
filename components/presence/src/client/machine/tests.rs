//! The client's decisions, driven natively: no browser, no server, no clock.

use super::*;
use presence_core::wire::{RoomSnapshot, SessionPresence, UserPresence};
use serde_json::json;

/// Ids `s1`, `s2`, … and tokens `t1`, `t2`, …
#[derive(Default)]
struct Counting {
    sessions: u32,
    tokens: u32,
}

impl Ids for Counting {
    fn session_id(&mut self) -> String {
        self.sessions += 1;
        format!("s{}", self.sessions)
    }
    fn token(&mut self) -> String {
        self.tokens += 1;
        format!("t{}", self.tokens)
    }
}

fn machine(state: Option<Value>) -> Machine {
    // The defaults: 10 s visible, 60 s hidden, 100 ms throttle, backoff 250 ms … 10 s.
    machine_with(UsePresenceOptions::default(), state)
}

fn machine_with(options: UsePresenceOptions, state: Option<Value>) -> Machine {
    Machine::new(
        options,
        Box::new(Counting::default()),
        "room".into(),
        "u1".into(),
        "Ada".into(),
        state,
        false,
    )
}

fn send(m: &Machine) -> HeartbeatArgs {
    match m.next_heartbeat(0.0) {
        Next::Send(args) => args,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

fn ok(
    session_token: &str,
    room_token: &str,
    joined: bool,
) -> Result<HeartbeatResponse, PresenceError> {
    Ok(HeartbeatResponse::new(
        "u1",
        session_token,
        room_token,
        joined,
        10_000,
        25_000,
    ))
}

fn snapshot_with(session: Option<&str>) -> RoomMessage {
    let sessions = session
        .map(|id| vec![SessionPresence::new(id, "Ada")])
        .unwrap_or_default();
    RoomMessage::Snapshot(RoomSnapshot::new(
        "room",
        1,
        vec![UserPresence::new("u1", "Ada", sessions)],
    ))
}

/// Joins and syncs: heartbeat answered, socket 1's snapshot applied.
fn joined() -> Machine {
    let mut m = machine(None);
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    m.message(1, snapshot_with(Some("s1")), |_| Applied::Changed);
    assert_eq!(m.status(), ConnectionStatus::Connected);
    m
}

#[test]
fn a_join_carries_the_proposed_token_and_the_state_then_opens_the_socket() {
    let mut m = machine(Some(json!({"typing": true})));
    assert_eq!(m.status(), ConnectionStatus::Connecting);
    let args = send(&m);
    assert_eq!(args.token, "t1");
    assert_eq!(args.session, "s1");
    assert_eq!(args.state, Some(json!({"typing": true})));
    assert_eq!(args.interval_ms, 10_000);
    let (wait, commands) = m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert_eq!(wait, 10_000);
    assert_eq!(
        commands,
        vec![
            Command::SetError(None),
            Command::OpenSocket {
                generation: 1,
                room_token: "R".into(),
                session_token: "T".into()
            }
        ]
    );
    // Joined, but the list is not live until the snapshot arrives.
    assert_eq!(m.status(), ConnectionStatus::Connecting);
    assert!(m
        .message(1, snapshot_with(Some("s1")), |_| Applied::Changed)
        .is_empty());
    assert_eq!(m.status(), ConnectionStatus::Connected);
    // Later heartbeats carry the server's token and no state.
    let args = send(&m);
    assert_eq!((args.token.as_str(), args.state), ("T", None));
}

#[test]
fn heartbeats_join_on_a_socket_only_while_no_socket_is_open_or_opening() {
    let mut m = machine(None);
    // The first join: its answer opens the socket, so the two go as one.
    assert!(m.joins_on_socket());
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    // Opening, then live: renewals go over HTTP.
    assert!(!m.joins_on_socket());
    m.message(1, snapshot_with(Some("s1")), |_| Applied::Changed);
    assert!(!m.joins_on_socket());
    // The socket lost: the next heartbeat opens the new one, whichever comes first.
    m.socket_closed(1, 0.0);
    assert!(m.joins_on_socket());
    let commands = m.socket_retry_due(1);
    assert!(commands.contains(&Command::Wake), "{commands:?}");
    assert!(!m.joins_on_socket());
    // Left: no heartbeats at all.
    m.leave();
    assert!(!m.joins_on_socket());
}

#[test]
fn a_heartbeat_that_changes_nothing_opens_no_socket() {
    let mut m = joined();
    let args = send(&m);
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R", false), 0.0);
    assert_eq!(commands, vec![Command::SetError(None)]);
}

#[test]
fn a_new_room_token_reopens_the_socket() {
    let mut m = joined();
    let args = send(&m);
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R2", false), 0.0);
    assert!(commands.contains(&Command::OpenSocket {
        generation: 2,
        room_token: "R2".into(),
        session_token: "T".into()
    }));
}

#[test]
fn failures_back_off_doubling_with_jitter_up_to_the_maximum_and_keep_the_tokens() {
    let mut m = joined();
    // Hidden: the backoff as set (a visible tab with a session retries within a second).
    m.visibility(true);
    let waits: Vec<u64> = (0..8)
        .map(|_| {
            let args = send(&m);
            let unavailable = PresenceError::Unavailable {
                message: "down".into(),
            };
            m.heartbeat_answered(&args, Err(unavailable), 1.0).0
        })
        .collect();
    assert_eq!(
        waits,
        [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
    );
    // Jitter takes the delay down to half, never below.
    assert_eq!(m.backoff_ms(3, 0.0), 500);
    // Known before: reconnecting, with the last good token still sent.
    assert_eq!(m.status(), ConnectionStatus::Reconnecting);
    assert_eq!(send(&m).token, "T");
    // One success resets the count.
    let args = send(&m);
    let (wait, commands) = m.heartbeat_answered(&args, ok("T", "R", false), 1.0);
    assert_eq!(wait, 10_000);
    assert_eq!(commands, vec![Command::SetError(None)]);
    assert_eq!(m.status(), ConnectionStatus::Connected);
}

#[test]
fn a_first_join_that_fails_is_connecting_not_reconnecting_and_shows_the_error() {
    let mut m = machine(None);
    let args = send(&m);
    let full = PresenceError::RoomFull {
        room: "room".into(),
        limit: 1,
    };
    let (_, commands) = m.heartbeat_answered(&args, Err(full.clone()), 0.0);
    assert_eq!(commands, vec![Command::SetError(Some(full))]);
    assert_eq!(m.status(), ConnectionStatus::Connecting);
    // The retry proposes the same token: a join the server applied is found, not doubled.
    assert_eq!(send(&m).token, "t1");
}

#[test]
fn too_many_requests_waits_as_long_as_the_server_says() {
    let mut m = joined();
    let args = send(&m);
    let (wait, commands) = m.heartbeat_answered(
        &args,
        Err(PresenceError::TooManyRequests {
            retry_after_ms: 1_700,
        }),
        0.0,
    );
    assert_eq!((wait, commands), (1_700, vec![]));
    let args = send(&m);
    let (wait, _) = m.heartbeat_answered(
        &args,
        Err(PresenceError::TooManyRequests { retry_after_ms: 3 }),
        0.0,
    );
    assert_eq!(wait, 250, "never sooner than the minimum backoff");
}

#[test]
fn a_session_id_held_by_another_tab_starts_a_fresh_session() {
    let mut m = machine(None);
    let args = send(&m);
    let (wait, commands) = m.heartbeat_answered(
        &args,
        Err(PresenceError::SessionTokenMismatch {
            session: "s1".into(),
        }),
        0.0,
    );
    assert_eq!(
        (wait, commands),
        (0, vec![Command::SetSession("s2".into())])
    );
    let args = send(&m);
    assert_eq!((args.session.as_str(), args.token.as_str()), ("s2", "t2"));
}

#[test]
fn an_identity_stamped_by_the_server_becomes_the_user() {
    let mut m = machine(None);
    let args = send(&m);
    let mut answer = ok("T", "R", true).unwrap();
    answer.user_id = "id:ada".into();
    let (_, commands) = m.heartbeat_answered(&args, Ok(answer), 0.0);
    assert_eq!(commands[0], Command::SetUser("id:ada".into()));
    assert_eq!(send(&m).user, "id:ada");
}

#[test]
fn a_rejoin_after_the_server_lost_the_session_resends_the_state() {
    let mut m = joined();
    m.set_state(json!({"x": 1}));
    m.flush_due();
    let args = send(&m);
    let (_, commands) = m.heartbeat_answered(&args, ok("T2", "R", true), 0.0);
    assert!(
        commands.contains(&Command::FlushStateAfter(0)),
        "{commands:?}"
    );
    assert!(commands
        .iter()
        .any(|e| matches!(e, Command::OpenSocket { .. })));
    assert_eq!(m.flush_due(), Some(("T2".into(), json!({"x": 1}))));
}

#[test]
fn a_snapshot_without_this_tab_or_its_expiry_wakes_the_heartbeat() {
    let mut m = joined();
    assert_eq!(
        m.message(1, snapshot_with(None), |_| Applied::Changed),
        vec![Command::Wake]
    );
    let expired = RoomMessage::Left {
        seq: 2,
        session_id: "s1".into(),
        reason: LeaveReason::Expired,
        user: UserPresence::new("u1", "Ada", vec![]).head(),
    };
    assert_eq!(
        m.message(1, expired.clone(), |_| Applied::Changed),
        vec![Command::Wake]
    );
    // Someone else's expiry is not ours.
    let RoomMessage::Left { .. } = &expired else {
        unreachable!()
    };
    let mut other = expired;
    if let RoomMessage::Left { session_id, .. } = &mut other {
        *session_id = "s9".into();
    }
    assert!(m.message(1, other, |_| Applied::Changed).is_empty());
}

#[test]
fn a_gap_in_the_stream_reopens_the_socket_for_a_snapshot() {
    let mut m = joined();
    let commands = m.message(1, snapshot_with(Some("s1")), |_| Applied::NeedsSnapshot);
    assert_eq!(
        commands,
        vec![Command::OpenSocket {
            generation: 2,
            room_token: "R".into(),
            session_token: "T".into()
        }]
    );
    assert_eq!(m.status(), ConnectionStatus::Reconnecting);
}

#[test]
fn messages_and_closes_of_an_old_socket_are_ignored() {
    let mut m = joined();
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R2", false), 0.0); // socket 2 opens
    let mut applied = false;
    assert!(m
        .message(1, snapshot_with(None), |_| {
            applied = true;
            Applied::Changed
        })
        .is_empty());
    assert!(!applied, "an old socket's message is not applied");
    assert!(m.socket_closed(1, 0.0).is_empty());
}

#[test]
fn a_closed_socket_retries_after_backoff_heartbeat_first() {
    let mut m = joined();
    assert_eq!(
        m.socket_closed(1, 1.0),
        vec![Command::RetrySocketAfter {
            generation: 1,
            delay_ms: 250
        }]
    );
    assert_eq!(m.status(), ConnectionStatus::Reconnecting);
    assert_eq!(
        m.socket_retry_due(1),
        vec![
            Command::Wake,
            Command::OpenSocket {
                generation: 2,
                room_token: "R".into(),
                session_token: "T".into()
            }
        ]
    );
    // The second failure in a row waits twice as long; a snapshot resets the count.
    assert_eq!(
        m.socket_closed(2, 1.0),
        vec![Command::RetrySocketAfter {
            generation: 2,
            delay_ms: 500
        }]
    );
    m.socket_retry_due(2);
    m.message(3, snapshot_with(Some("s1")), |_| Applied::Changed);
    assert_eq!(m.status(), ConnectionStatus::Connected);
    assert_eq!(
        m.socket_closed(3, 1.0),
        vec![Command::RetrySocketAfter {
            generation: 3,
            delay_ms: 250
        }]
    );
    // A retry whose socket was replaced meanwhile does nothing.
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R", true), 0.0); // opens socket 4
    assert!(m.socket_retry_due(3).is_empty());
}

#[test]
fn state_is_throttled_to_one_update_per_window_with_the_latest_value() {
    let mut m = machine(None);
    // Before the join: the join carries it.
    assert!(m.set_state(json!(1)).is_empty());
    assert_eq!(send(&m).state, Some(json!(1)));
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert_eq!(m.set_state(json!(2)), vec![Command::FlushStateAfter(100)]);
    assert!(m.set_state(json!(3)).is_empty(), "one timer per window");
    assert_eq!(m.flush_due(), Some(("T".into(), json!(3))));
    assert_eq!(
        m.set_state(Value::Null),
        vec![Command::FlushStateAfter(100)]
    );
    assert_eq!(m.flush_due(), Some(("T".into(), Value::Null)));
    assert_eq!(
        m.update_failed(&PresenceError::InvalidSessionToken),
        vec![Command::Wake]
    );
    assert!(m
        .update_failed(&PresenceError::Unavailable {
            message: "x".into()
        })
        .is_empty());
}

#[test]
fn a_room_change_leaves_the_old_room_and_joins_the_new_one_with_a_new_proposal() {
    let mut m = joined();
    assert!(
        m.set_room("room".into()).is_empty(),
        "the same room is no change"
    );
    let commands = m.set_room("other".into());
    assert_eq!(
        commands,
        vec![
            Command::CloseSocket,
            Command::Disconnect("T".into()),
            Command::ClearList,
            Command::Wake
        ]
    );
    assert_eq!(m.status(), ConnectionStatus::Connecting);
    let args = send(&m);
    assert_eq!((args.room.as_str(), args.token.as_str()), ("other", "t2"));
}

#[test]
fn an_answer_for_a_room_already_left_ends_its_session() {
    let mut m = machine(None);
    let args = send(&m);
    m.set_room("other".into());
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert_eq!(commands, vec![Command::Disconnect("T".into())]);
    assert_eq!(send(&m).room, "other");
}

#[test]
fn leave_stops_everything_until_the_room_is_set_again() {
    let mut m = joined();
    assert_eq!(
        m.leave(),
        vec![Command::CloseSocket, Command::Disconnect("T".into())]
    );
    assert_eq!(m.status(), ConnectionStatus::Offline);
    assert_eq!(m.next_heartbeat(0.0), Next::Idle);
    assert!(m.set_state(json!(1)).is_empty());
    // An answer to a heartbeat sent before leaving.
    let args = send(&machine(None));
    let (_, commands) = m.heartbeat_answered(&args, ok("T9", "R", true), 0.0);
    assert_eq!(commands, vec![Command::Disconnect("T9".into())]);
    // Setting the same room again rejoins.
    assert_eq!(
        m.set_room("room".into()),
        vec![Command::ClearList, Command::Wake]
    );
    assert!(matches!(m.next_heartbeat(0.0), Next::Send(_)));
    // After shut-down nothing comes back.
    assert!(m.shut_down().is_empty(), "left already: nothing to say");
    assert!(m.set_room("third".into()).is_empty());
    assert_eq!(m.next_heartbeat(0.0), Next::Idle);
}

#[test]
fn unloading_says_going_with_a_beacon_and_pauses_heartbeats_until_shown_again() {
    let mut m = joined();
    assert_eq!(
        m.unloading(1_000.0, true),
        vec![
            Command::CloseSocket,
            Command::Remember(kept_s1()),
            Command::Going("T".into())
        ]
    );
    assert_eq!(m.next_heartbeat(2_000.0), Next::Wait(2_001));
    // Still there 3 s later (a cancelled unload): the same session, which the heartbeat keeps
    // (or makes again under its token, if the server's grace ran out).
    let args = match m.next_heartbeat(4_000.0) {
        Next::Send(args) => args,
        other => panic!("{other:?}"),
    };
    assert_eq!(args.token, "T", "the tokens stay after a goodbye");
    // From the back/forward cache: at once.
    m.unloading(10_000.0, true);
    assert_eq!(m.shown_again(), vec![Command::ForgetResume, Command::Wake]);
    assert!(matches!(m.next_heartbeat(10_001.0), Next::Send(_)));
}

#[test]
fn unloading_does_nothing_when_leave_on_unload_is_off() {
    let mut m = machine_with(UsePresenceOptions::default().leave_on_unload(false), None);
    assert!(m.unloading(0.0, true).is_empty());
    assert!(matches!(m.next_heartbeat(1.0), Next::Send(_)));
}

#[test]
fn a_hidden_tab_heartbeats_away_at_the_hidden_interval() {
    let mut m = joined();
    assert_eq!(m.visibility(true), vec![Command::Wake]);
    let args = send(&m);
    assert!(args.away);
    assert_eq!(args.interval_ms, 60_000);
    let mut answer = ok("T", "R", false).unwrap();
    answer.interval_ms = 60_000; // as the server applies it
    assert_eq!(m.heartbeat_answered(&args, Ok(answer), 0.0).0, 60_000);
    m.visibility(false);
    let args = send(&m);
    assert_eq!((args.away, args.interval_ms), (false, 10_000));
}

#[test]
fn no_network_is_offline_and_its_return_wakes_the_heartbeat() {
    let mut m = joined();
    assert!(m.network(false).is_empty());
    assert_eq!(m.status(), ConnectionStatus::Offline);
    assert_eq!(m.network(true), vec![Command::Wake]);
    assert_eq!(m.status(), ConnectionStatus::Connected);
}

#[test]
fn a_name_change_is_sent_at_once_and_only_if_it_changed() {
    let mut m = joined();
    assert!(m.set_name("Ada".into()).is_empty());
    assert_eq!(m.set_name("Ada L.".into()), vec![Command::Wake]);
    assert_eq!(send(&m).name, "Ada L.");
}

#[test]
fn state_set_while_the_join_is_in_flight_is_sent_once_it_lands() {
    let mut m = machine(Some(json!(1)));
    let args = send(&m);
    assert!(m.set_state(json!(2)).is_empty(), "no tokens yet");
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert!(
        commands.contains(&Command::FlushStateAfter(0)),
        "{commands:?}"
    );
    assert_eq!(m.flush_due(), Some(("T".into(), json!(2))));
    // A join that carried the state the tab still has sends nothing more.
    let mut m = machine(Some(json!(1)));
    let args = send(&m);
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert!(
        !commands.contains(&Command::FlushStateAfter(0)),
        "{commands:?}"
    );
}

#[test]
fn the_next_heartbeat_follows_the_interval_the_server_applied() {
    let mut m = machine(None);
    m.visibility(true); // 60 s wanted
    let args = send(&m);
    let mut answer = ok("T", "R", true).unwrap();
    answer.interval_ms = 30_000; // the server clamped it
    assert_eq!(m.heartbeat_answered(&args, Ok(answer), 0.0).0, 30_000);
}

#[test]
fn a_zero_backoff_still_waits_a_little() {
    let mut m = machine_with(UsePresenceOptions::default().backoff_ms(0, 0), None);
    let args = send(&m);
    let down = PresenceError::Unavailable {
        message: "down".into(),
    };
    assert_eq!(m.heartbeat_answered(&args, Err(down), 0.0).0, MIN_RETRY_MS);
    let args = send(&m);
    let limited = PresenceError::TooManyRequests { retry_after_ms: 0 };
    assert_eq!(
        m.heartbeat_answered(&args, Err(limited), 0.0).0,
        MIN_RETRY_MS
    );
}

#[test]
fn a_heartbeat_in_flight_when_the_page_unloads_is_stale() {
    let mut m = joined();
    let args = send(&m);
    m.unloading(0.0, true);
    // The server made the session again after the beacon: this tab ends it.
    let (_, commands) = m.heartbeat_answered(&args, ok("T", "R", true), 0.0);
    assert_eq!(commands, vec![Command::Disconnect("T".into())]);
}

#[test]
fn a_session_now_another_users_starts_afresh_once() {
    let mut m = joined();
    let args = send(&m);
    let forbidden = PresenceError::Forbidden {
        reason: "another user's session".into(),
    };
    let (wait, commands) = m.heartbeat_answered(&args, Err(forbidden.clone()), 0.0);
    assert_eq!(wait, 0);
    assert_eq!(
        commands,
        vec![
            Command::SetSession("s2".into()),
            Command::SetError(Some(forbidden.clone()))
        ]
    );
    // Refused again without a session (the room itself is not allowed): back off.
    let args = send(&m);
    assert_eq!(args.token, "t2");
    let (wait, _) = m.heartbeat_answered(&args, Err(forbidden), 1.0);
    assert_eq!(wait, 250);
}

#[test]
fn a_new_user_id_leaves_as_the_old_user_and_joins_as_the_new() {
    let mut m = joined();
    assert!(m.set_user("u1".into()).is_empty());
    assert_eq!(
        m.set_user("u2".into()),
        vec![
            Command::SetUser("u2".into()),
            Command::CloseSocket,
            Command::Disconnect("T".into()),
            Command::ClearList,
            Command::Wake
        ]
    );
    let args = send(&m);
    assert_eq!((args.user.as_str(), args.token.as_str()), ("u2", "t2"));
}

#[test]
fn unmounting_says_going_so_a_remount_is_not_a_leave_but_leave_is_at_once() {
    // The component unmounts (an in-app navigation): the server keeps the session for its leave
    // grace, so a page that shows the same room right after does not flicker the user offline.
    let mut m = joined();
    assert_eq!(
        m.shut_down(),
        vec![
            Command::CloseSocket,
            Command::Remember(kept_s1()),
            Command::Going("T".into())
        ]
    );
    assert_eq!(m.next_heartbeat(0.0), Next::Idle);
    assert!(m.shut_down().is_empty());
    // `leave()`, the app's own "I am leaving": at once.
    let mut m = joined();
    assert_eq!(
        m.leave(),
        vec![Command::CloseSocket, Command::Disconnect("T".into())]
    );
}

#[test]
fn a_visible_tab_with_a_session_retries_a_failed_heartbeat_within_a_second() {
    // The server keeps a session 4.5 s past its interval: a retry at least every second bridges
    // a blip of a few seconds. Before a session exists, or while hidden, the backoff is as set.
    let failing_waits = |mut m: Machine| -> Vec<u64> {
        let args = send(&m);
        (0..8)
            .map(|_| {
                let down = PresenceError::Unavailable {
                    message: "down".into(),
                };
                m.heartbeat_answered(&args, Err(down), 1.0).0
            })
            .collect()
    };
    let visible = failing_waits(joined());
    assert!(
        visible.iter().all(|w| *w <= LIVE_RETRY_MAX_MS),
        "{visible:?}"
    );
    let before_joining = failing_waits(machine(None));
    assert!(
        before_joining.iter().any(|w| *w > LIVE_RETRY_MAX_MS),
        "{before_joining:?}"
    );
    let mut hidden = joined();
    hidden.visibility(true);
    let hidden = failing_waits(hidden);
    assert!(hidden.iter().any(|w| *w > LIVE_RETRY_MAX_MS), "{hidden:?}");
}

fn send_at(m: &Machine, now: f64) -> HeartbeatArgs {
    match m.next_heartbeat(now) {
        Next::Send(args) => args,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[test]
fn a_visible_tab_without_input_turns_idle_at_a_heartbeat_and_input_makes_it_active_at_once() {
    let mut m = joined();
    let after = UsePresenceOptions::default().idle_after_ms;
    assert!(m.input(1_000.0).is_empty(), "not idle: nothing to say");
    // Idle is noticed by the next heartbeat after `idle_after_ms`: no extra heartbeat.
    assert_eq!(send_at(&m, 1_000.0 + after as f64 - 1.0).idle_for_ms, None);
    let idle = send_at(&m, 1_000.0 + after as f64 + 5_000.0);
    assert_eq!(idle.idle_for_ms, Some(after + 5_000));
    m.heartbeat_answered(&idle, ok("T", "R", false), 0.0);
    // Input: a heartbeat at once, active.
    let now = 1_000.0 + after as f64 + 6_000.0;
    assert_eq!(m.input(now), vec![Command::Wake]);
    assert_eq!(send_at(&m, now).idle_for_ms, None);
    assert!(m.input(now + 1.0).is_empty(), "once is enough");
    // Hidden is away, never idle.
    m.visibility(true);
    assert_eq!(send_at(&m, now + 10.0 * after as f64).idle_for_ms, None);
    // Off when 0.
    let mut off = machine_with(UsePresenceOptions::default().idle_after_ms(0), None);
    off.input(0.0);
    assert_eq!(send_at(&off, 1e12).idle_for_ms, None);
}

fn forbidden() -> Result<HeartbeatResponse, PresenceError> {
    Err(PresenceError::Forbidden {
        reason: "no".into(),
    })
}

#[test]
fn invisibility_is_sent_at_once_and_a_refusal_never_shows_the_tab() {
    // On: the next heartbeat, now, says so; the same again changes nothing.
    let mut m = joined();
    assert!(!send(&m).invisible);
    assert_eq!(
        m.set_invisible(true),
        vec![Command::SetInvisible(true), Command::Wake]
    );
    assert!(m.set_invisible(true).is_empty());
    let args = send(&m);
    assert!(args.invisible);
    assert_eq!(args.token, "T", "the same session, invisible");
    // Refused for a visible session: it stays visible, says why, and keeps its session.
    let (wait, commands) = m.heartbeat_answered(&args, forbidden(), 0.0);
    assert_eq!(wait, 0);
    assert!(
        commands.contains(&Command::SetInvisible(false)),
        "{commands:?}"
    );
    assert!(!commands.iter().any(|c| matches!(c, Command::SetSession(_))));
    let args = send(&m);
    assert!(!args.invisible);
    assert_eq!(args.token, "T");

    // Allowed: held invisible. If the right is taken back, it does not show itself: it backs
    // off, still invisible.
    m.set_invisible(true);
    let args = send(&m);
    m.heartbeat_answered(&args, ok("T", "R", false), 0.0);
    let args = send(&m);
    let (wait, commands) = m.heartbeat_answered(&args, forbidden(), 0.0);
    assert!(wait > 0);
    assert!(
        !commands.contains(&Command::SetInvisible(false)),
        "{commands:?}"
    );
    assert!(send(&m).invisible);

    // Joining invisibly and refused: no visible join instead, a retry later.
    let mut m = machine_with(UsePresenceOptions::default().invisible(true), None);
    let args = send(&m);
    assert!(args.invisible);
    let (wait, commands) = m.heartbeat_answered(&args, forbidden(), 0.0);
    assert!(wait > 0);
    assert!(!commands.contains(&Command::SetInvisible(false)));
    assert!(send(&m).invisible);
}

#[test]
fn a_reload_or_a_remount_takes_on_the_session_the_going_page_kept() {
    // The going page keeps its session (before its goodbye), and so does an unmount.
    let mut m = joined();
    let commands = m.unloading(0.0, true);
    let kept = kept_s1();
    assert_eq!(
        commands[commands.len() - 2..],
        [Command::Remember(kept.clone()), Command::Going("T".into())]
    );
    assert_eq!(
        m.shown_again()[0],
        Command::ForgetResume,
        "the page lived on"
    );
    let mut m = joined();
    assert!(m.shut_down().contains(&Command::Remember(kept)));
    // `beforeunload` alone (a download, a `mailto:` link): goodbye, but nothing kept.
    let mut m = joined();
    assert_eq!(
        m.unloading(0.0, false),
        vec![Command::CloseSocket, Command::Going("T".into())]
    );

    // The next page: its first heartbeat carries the kept id and token (and its own state).
    let kept = Resume {
        room: "room".into(),
        user: "u1".into(),
        session: "kept".into(),
        token: "K".into(),
    };
    let mut m = machine(Some(json!({"x": 1})));
    m.resume(kept.clone());
    let args = send(&m);
    assert_eq!((args.session.as_str(), args.token.as_str()), ("kept", "K"));
    assert_eq!(args.state, Some(json!({"x": 1})));
    // Another room's or user's: ignored.
    for other in [
        Resume {
            room: "elsewhere".into(),
            ..kept.clone()
        },
        Resume {
            user: "u2".into(),
            ..kept.clone()
        },
    ] {
        let mut m = machine(None);
        m.resume(other);
        assert_eq!(send(&m).session, "s1");
    }
}

/// What [`joined`]'s session keeps for a next page.
fn kept_s1() -> Resume {
    Resume {
        room: "room".into(),
        user: "u1".into(),
        session: "s1".into(),
        token: "T".into(),
    }
}

#[test]
fn with_an_auth_hook_the_next_page_still_takes_on_the_session() {
    // The server stamped another id ("id:ada") on this tab, which asked as "u1".
    let mut m = machine(None);
    let args = send(&m);
    let stamped = HeartbeatResponse::new("id:ada", "T", "R", true, 10_000, 25_000);
    m.heartbeat_answered(&args, Ok(stamped), 0.0);
    let kept = m
        .unloading(0.0, true)
        .into_iter()
        .find_map(|c| match c {
            Command::Remember(kept) => Some(kept),
            _ => None,
        })
        .expect("kept");
    assert_eq!(kept.user, "u1", "as the next page will ask");
    // The next page asks as "u1" again, and takes the session on.
    let mut next = machine(None);
    next.resume(Resume {
        session: "kept".into(),
        ..kept
    });
    assert_eq!(send(&next).session, "kept");
    // The app's id again (its effect ran once more) is no change, stamped or not.
    assert!(m.set_user("u1".into()).is_empty());
}
