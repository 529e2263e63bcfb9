//! Property tests: random sequences of operations against a model simple enough to trust.
//! Whatever the sequence, the registry never panics, `list` always equals the model, a refused
//! call changes nothing, and once time runs far enough nobody is left online (no ghosts).

use super::*;
use crate::limits::{clamp_interval, expiry_after};
use crate::server::RateLimit;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];

#[derive(Debug, Clone)]
enum Op {
    /// A first heartbeat (no token).
    Join {
        room: usize,
        user: usize,
        session: usize,
        interval_s: u64,
    },
    /// A heartbeat with the session's own token, or a forged one.
    Heartbeat {
        room: usize,
        session: usize,
        genuine: bool,
        interval_s: u64,
        away: bool,
    },
    Update {
        room: usize,
        session: usize,
        genuine: bool,
        state: u8,
    },
    Disconnect {
        room: usize,
        session: usize,
        genuine: bool,
    },
    /// Time passes (sometimes a lot, as after a laptop sleeps) and due deadlines are handled.
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..4usize, 0..5usize, 1..40u64).prop_map(
            |(room, user, session, interval_s)| {
                Op::Join {
                    room,
                    user,
                    session,
                    interval_s,
                }
            }
        ),
        (0..3usize, 0..5usize, any::<bool>(), 1..40u64, any::<bool>()).prop_map(
            |(room, session, genuine, interval_s, away)| Op::Heartbeat {
                room,
                session,
                genuine,
                interval_s,
                away
            }
        ),
        (0..3usize, 0..5usize, any::<bool>(), 0..3u8).prop_map(
            |(room, session, genuine, state)| Op::Update {
                room,
                session,
                genuine,
                state
            }
        ),
        (0..3usize, 0..5usize, any::<bool>()).prop_map(|(room, session, genuine)| Op::Disconnect {
            room,
            session,
            genuine
        }),
        prop_oneof![0..5_000u64, 0..200_000u64].prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct Live {
    user: &'static str,
    token: SessionToken,
    deadline: u64,
}

/// The model: which sessions are live, and until when.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<(usize, String), Live>,
}

impl Model {
    fn online(&self, room: usize) -> BTreeSet<(String, String)> {
        self.live
            .iter()
            .filter(|((r, _), _)| *r == room)
            .map(|((_, s), l)| (l.user.to_string(), s.clone()))
            .collect()
    }
}

fn listed(reg: &Registry, room: usize) -> BTreeSet<(String, String)> {
    let snapshot = reg.snapshot(ROOMS[room]);
    let mut out = BTreeSet::new();
    for user in &snapshot.users {
        assert_eq!(user.online, !user.sessions.is_empty(), "{user:?}");
        assert_eq!(user.last_seen.is_some(), !user.online, "{user:?}");
        for s in &user.sessions {
            out.insert((user.user_id.clone(), s.session_id.clone()));
        }
    }
    out
}

fn session_name(i: usize) -> String {
    format!("s{i}")
}

fn run(ops: Vec<Op>) {
    let mut reg = Registry::new(
        PresenceConfig {
            session_rate: RateLimit::UNLIMITED,
            ..PresenceConfig::default()
        },
        RoomTokenKey::new(b"model"),
    );
    let mut model = Model::default();
    let mut now = 1_700_000_000_000u64;
    let forged = SessionToken::generate();
    for op in ops {
        match op {
            Op::Join {
                room,
                user,
                session,
                interval_s,
            } => {
                let key = (room, session_name(session));
                let request = HeartbeatRequest {
                    room: ROOMS[room].into(),
                    user: USERS[user].into(),
                    session: key.1.clone(),
                    name: USERS[user].to_uppercase(),
                    interval_ms: Some(interval_s * 1000),
                    state: None,
                    away: false,
                    idle_for_ms: None,
                    session_token: None,
                    kind: Default::default(),
                    invisible: false,
                    ttl_ms: None,
                };
                let result = reg.heartbeat(&request, now);
                match model.live.entry(key) {
                    std::collections::btree_map::Entry::Occupied(_) => assert!(
                        matches!(result, Err(PresenceError::SessionTokenMismatch { .. })),
                        "{result:?}"
                    ),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let outcome = result.expect("a fresh join succeeds");
                        assert!(outcome.joined);
                        let deadline = now + expiry_after(clamp_interval(Some(interval_s * 1000)));
                        slot.insert(Live {
                            user: USERS[user],
                            token: outcome.token,
                            deadline,
                        });
                    }
                }
            }
            Op::Heartbeat {
                room,
                session,
                genuine,
                interval_s,
                away,
            } => {
                let key = (room, session_name(session));
                let Some(live) = model.live.get(&key).cloned() else {
                    continue;
                };
                let token = if genuine { live.token } else { forged };
                let request = HeartbeatRequest {
                    room: ROOMS[room].into(),
                    user: live.user.into(),
                    session: key.1.clone(),
                    name: live.user.to_uppercase(),
                    interval_ms: Some(interval_s * 1000),
                    state: None,
                    away,
                    idle_for_ms: None,
                    session_token: Some(token.to_hex()),
                    kind: Default::default(),
                    invisible: false,
                    ttl_ms: None,
                };
                let result = reg.heartbeat(&request, now);
                if genuine {
                    let outcome = result.expect("a genuine heartbeat succeeds");
                    assert!(!outcome.joined);
                    model.live.get_mut(&key).unwrap().deadline =
                        now + expiry_after(clamp_interval(Some(interval_s * 1000)));
                } else {
                    assert!(
                        matches!(result, Err(PresenceError::SessionTokenMismatch { .. })),
                        "{result:?}"
                    );
                }
            }
            Op::Update {
                room,
                session,
                genuine,
                state,
            } => {
                let key = (room, session_name(session));
                let token = match model.live.get(&key) {
                    Some(live) if genuine => live.token,
                    _ => forged,
                };
                let result = reg.update_state(&token.to_hex(), json!({ "v": state }), None, now);
                assert_eq!(
                    result.is_ok(),
                    genuine && model.live.contains_key(&key),
                    "{result:?}"
                );
            }
            Op::Disconnect {
                room,
                session,
                genuine,
            } => {
                let key = (room, session_name(session));
                let token = match model.live.get(&key) {
                    Some(live) if genuine => live.token,
                    _ => forged,
                };
                let result = reg.disconnect(&token.to_hex(), None, now);
                if genuine && model.live.remove(&key).is_some() {
                    result.expect("a genuine disconnect succeeds");
                } else {
                    assert_eq!(result, Err(PresenceError::InvalidSessionToken));
                }
            }
            Op::Advance { ms } => {
                now += ms;
                reg.expire_due(now);
                model.live.retain(|_, l| l.deadline > now);
            }
        }
        for room in 0..ROOMS.len() {
            assert_eq!(
                listed(&reg, room),
                model.online(room),
                "room {room} after {op:?}"
            );
        }
        for user in USERS {
            let expected: Vec<String> = (0..ROOMS.len())
                .filter(|r| model.online(*r).iter().any(|(u, _)| u == user))
                .map(|r| ROOMS[r].to_string())
                .collect();
            assert_eq!(reg.list_user(user), expected, "{user}");
        }
    }
    // No ghosts: past every deadline, nobody is online anywhere.
    now += 10 * 60 * 1000;
    reg.expire_due(now);
    for room in 0..ROOMS.len() {
        assert!(listed(&reg, room).is_empty(), "ghosts in room {room}");
    }
    assert_eq!(reg.session_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_operations_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }

    #[test]
    fn arbitrary_text_never_panics_the_parsers(text in any::<String>()) {
        let _ = SessionToken::parse(&text);
        let _ = RoomTokenKey::new(b"k").verify(&text);
        let _ = crate::validate::id(Field::Room, &text);
        let _ = crate::validate::name(&text);
        let _ = serde_json::from_str::<HeartbeatRequest>(&text);
        let _ = serde_json::from_str::<RoomMessage>(&text);
        let _ = serde_json::from_str::<PresenceError>(&text);
    }

    #[test]
    fn arbitrary_requests_are_accepted_or_refused_with_a_typed_error(
        room in ".{0,140}", user in ".{0,140}", session in ".{0,140}", name in ".{0,70}",
        interval in proptest::option::of(any::<u64>()), token in proptest::option::of(".{0,70}"),
    ) {
        let mut reg = Registry::new(PresenceConfig::default(), RoomTokenKey::new(b"k"));
        let request = HeartbeatRequest {
            room, user, session, name, interval_ms: interval, state: None, away: false,
            idle_for_ms: None, session_token: token, kind: Default::default(),
                    invisible: false, ttl_ms: None,
        };
        match reg.heartbeat(&request, 1_700_000_000_000) {
            Ok(outcome) => prop_assert!(outcome.joined),
            Err(PresenceError::InvalidInput { .. }) => prop_assert_eq!(reg.session_count(), 0),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn a_clock_jump_like_a_laptop_waking_expires_everyone_once_and_only_once() {
    let mut reg = Registry::new(PresenceConfig::default(), RoomTokenKey::new(b"k"));
    let t0 = 1_700_000_000_000;
    let (_, _, mut rx) = reg.subscribe("r0", None, None).unwrap();
    for i in 0..50 {
        reg.heartbeat(
            &HeartbeatRequest {
                room: "r0".into(),
                user: format!("u{i}"),
                session: format!("s{i}"),
                name: "N".into(),
                interval_ms: Some(10_000),
                state: None,
                away: false,
                idle_for_ms: None,
                session_token: None,
                kind: Default::default(),
                invisible: false,
                ttl_ms: None,
            },
            t0,
        )
        .unwrap();
    }
    // Back in time: nothing happens.
    reg.expire_due(t0 - 3_600_000);
    // Eight hours later, in one step.
    reg.expire_due(t0 + 8 * 3_600_000);
    reg.expire_due(t0 + 8 * 3_600_000 + 1);
    let mut left = 0;
    while let Ok(m) = rx.try_recv() {
        if matches!(m.message(), RoomMessage::Left { .. }) {
            left += 1;
        }
    }
    assert_eq!(left, 50, "every session left exactly once");
    assert_eq!(reg.session_count(), 0);
}
