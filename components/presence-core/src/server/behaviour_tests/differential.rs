//! The differential test: the same random operation sequences against the memory store and a
//! real redis-server, on one clock. After every step both stores must answer alike (the same
//! result or the same error) and list every room identically; at the end each room's
//! subscription must have carried the same messages in both, and its first snapshot plus those
//! diffs (each naming one session) must make the room as listed. Sequences mix joins (several in one
//! millisecond), heartbeats that change name, state, away or idle, updates, disconnects,
//! goodbyes (`going`, ended by the leave grace or taken back by a heartbeat), invisible sessions
//! (joining invisibly, turning it on and off: told to nobody, shown as one join), expiries, agents
//! (with and without a TTL, exempt from the per-user caps; a session claiming the other kind),
//! per-user and per-room caps, and offline users capped with ties on `last_seen`. Both stores must also
//! agree on every user's status across rooms (`users_status`) and rooms (`list_user`) after each step, and on which
//! changes occupied or vacated a room (`changes()`).
//!
//! Seeded, so a failure names its seed and replays exactly.

use super::*;

/// A small deterministic generator (xorshift64*), so sequences replay from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ROOMS: [&str; 2] = ["d0", "d1"];
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const SESSIONS: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];
/// Names, some the same once trimmed (stored trimmed: the same name, not a change).
const NAMES: [&str; 4] = ["Ann", "Bea", "Cy", "  Ann "];

/// A store's answer to one step, in a form both can be compared by.
#[derive(Debug, PartialEq)]
enum Answer {
    Joined(bool),
    Done,
    Failed(&'static str),
}

fn answer<T>(r: Result<T, PresenceError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match r {
        Ok(v) => ok(v),
        Err(e) => Answer::Failed(e.code()),
    }
}

struct Pair {
    memory: Presence,
    redis: Presence,
    clock: ManualClock,
    /// The session token of (room, session), as both stores hold it (proposed alike).
    tokens: std::collections::HashMap<(usize, usize), String>,
    /// The Redis store's slot groups.
    groups: u32,
}

impl Pair {
    /// Runs one step on both stores; their answers must agree.
    async fn step(&mut self, rng: &mut Rng, seed: u64, n: usize) {
        let room = rng.below(ROOMS.len() as u64) as usize;
        let session = rng.below(SESSIONS.len() as u64) as usize;
        let state = [
            None,
            Some(json!({"s": 1})),
            Some(json!({"s": 2})),
            Some(json!(null)),
        ];
        let kind = rng.below(10);
        if std::env::var_os("PRESENCE_DIFF_TRACE").is_some() {
            eprintln!(
                "seed {seed} step {n}: kind {kind} room {room} session {session} at +{}",
                self.clock.now_ms() - T0
            );
        }
        let (on_memory, on_redis) = match kind {
            // A heartbeat: a first one (a join, with a proposed token), or with the token held.
            0..=4 => {
                let user = *rng.pick(&USERS);
                let mut req = req(ROOMS[room], user, SESSIONS[session]);
                req.name = rng.pick(&NAMES).to_string();
                req.interval_ms = Some(*rng.pick(&[1_000, 5_000, 20_000]));
                req.away = rng.below(4) == 0;
                req.idle_for_ms = match rng.below(4) {
                    0 => Some(300_000),
                    1 => Some(310_000),
                    _ => None,
                };
                req.state = rng.pick(&state).clone();
                // Now and then an agent's (with its TTL, or without), or a person's with a TTL
                // (refused alike); a session heartbeating as the other kind is refused alike.
                match rng.below(8) {
                    0 | 1 => {
                        req.kind = crate::wire::PresenceKind::Agent;
                        req.ttl_ms = *rng.pick(&[None, Some(3_000), Some(60_000)]);
                    }
                    2 if rng.below(4) == 0 => req.ttl_ms = Some(60_000),
                    _ => {}
                }
                // Invisible now and then (a join, or turning it on or off).
                req.invisible = rng.below(4) == 0;
                // The token held, or a proposal: random, or now and then a made-up one that
                // must not be adopted (then each store makes its own and the two differ).
                req.session_token = Some(match self.tokens.get(&(room, session)) {
                    Some(token) if rng.below(5) != 0 => token.clone(),
                    _ if rng.below(8) == 0 => "ab".repeat(32),
                    // (Proposed as the Redis store adopts it, so that both adopt the same.)
                    _ => store::redis::test_support::adopted_token(
                        self.groups,
                        ROOMS[room],
                        &SessionToken::generate().to_hex(),
                    ),
                });
                let weak = req.session_token.as_deref() == Some(&"ab".repeat(32));
                let m = self.memory.heartbeat(&req).await;
                let r = self.redis.heartbeat(&req).await;
                if let (Ok(a), Ok(b)) = (&m, &r) {
                    if weak && a.joined {
                        assert_ne!(a.session_token, "ab".repeat(32), "seed {seed} step {n}");
                        assert_ne!(b.session_token, "ab".repeat(32), "seed {seed} step {n}");
                        // Each store made its own token: hold neither, so later calls on this
                        // session fail alike in both (as with a lost token) until it ends.
                        self.tokens.remove(&(room, session));
                    } else {
                        assert_eq!(a.session_token, b.session_token, "seed {seed} step {n}");
                        self.tokens.insert((room, session), a.session_token.clone());
                    }
                }
                (
                    answer(m, |r| Answer::Joined(r.joined)),
                    answer(r, |r| Answer::Joined(r.joined)),
                )
            }
            5 => {
                let token = self.token(room, session);
                let value = rng.pick(&state).clone().unwrap_or(json!(null));
                (
                    answer(
                        self.memory.update_state(&token, value.clone()).await,
                        |_| Answer::Done,
                    ),
                    answer(self.redis.update_state(&token, value).await, |_| {
                        Answer::Done
                    }),
                )
            }
            6 => {
                let token = self.token(room, session);
                let away = rng.below(2) == 0;
                (
                    answer(self.memory.set_away(&token, away).await, |_| Answer::Done),
                    answer(self.redis.set_away(&token, away).await, |_| Answer::Done),
                )
            }
            7 if rng.below(2) == 0 => {
                let token = self.token(room, session);
                (
                    answer(self.memory.disconnect(&token).await, |_| Answer::Done),
                    answer(self.redis.disconnect(&token).await, |_| Answer::Done),
                )
            }
            // The page is going: ended by the leave grace unless a heartbeat takes it back.
            7 => {
                let token = self.token(room, session);
                (
                    answer(self.memory.going(&token).await, |_| Answer::Done),
                    answer(self.redis.going(&token).await, |_| Answer::Done),
                )
            }
            // Time passes: often not at all (several changes in one millisecond), sometimes
            // past deadlines and retentions, once in a while a long jump.
            _ => {
                let ms = *rng.pick(&[0, 0, 1, 700, 2_500, 13_000, 40_000, 130_000]);
                self.clock.advance(ms);
                // Both schedulers act on what came due before the next step.
                let started = std::time::Instant::now();
                while !(self.memory.settled().await && self.redis.settled().await) {
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "seed {seed} step {n}: deadlines not acted on"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (Answer::Done, Answer::Done)
            }
        };
        assert_eq!(
            on_memory, on_redis,
            "seed {seed} step {n}: the stores answered apart"
        );
        self.agree(seed, n).await;
    }

    /// The token held for (room, session), or a well-formed one nobody holds.
    fn token(&self, room: usize, session: usize) -> String {
        self.tokens
            .get(&(room, session))
            .cloned()
            .unwrap_or_else(|| SessionToken::generate().to_hex())
    }

    /// Both stores list every room alike (waiting a little for schedulers to act on time).
    async fn agree(&self, seed: u64, n: usize) {
        for room in ROOMS {
            let started = std::time::Instant::now();
            loop {
                let m = self.memory.list_room(room).await.unwrap();
                let r = self.redis.list_room(room).await.unwrap();
                if m == r {
                    break;
                }
                if started.elapsed() > Duration::from_secs(2) {
                    panic!(
                        "seed {seed} step {n}: room {room} differs\nmemory: {m:#?}\nredis: {r:#?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let m = self.memory.users_status(USERS).await.unwrap();
        let r = self.redis.users_status(USERS).await.unwrap();
        assert_eq!(m, r, "seed {seed} step {n}: users' status differs");
        for user in USERS {
            let m = self.memory.list_user(user).await.unwrap();
            let r = self.redis.list_user(user).await.unwrap();
            assert_eq!(m, r, "seed {seed} step {n}: {user}'s rooms differ");
        }
    }
}

/// The changes that occupied or vacated each room, up to its `seq`: (room, seq, occupancy).
async fn occupancy_until(
    changes: &mut Changes,
    last: &[(&str, u64)],
) -> Vec<(String, u64, crate::server::Occupancy)> {
    let mut out = Vec::new();
    let mut at: Vec<u64> = vec![0; last.len()];
    while at.iter().zip(last).any(|(a, (_, seq))| a < seq) {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("the store is alive");
        let Some(i) = last.iter().position(|(room, _)| *room == &*change.room) else {
            continue;
        };
        at[i] = change.message.message().seq();
        if let Some(o) = change.occupancy {
            out.push((change.room.to_string(), at[i], o));
        }
    }
    assert_eq!(changes.missed(), 0);
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

/// Every message of a subscription up to `seq`.
async fn messages_until(sub: &mut Subscription, seq: u64) -> Vec<RoomMessage> {
    let mut out = Vec::new();
    loop {
        let m = next(sub).await;
        let at = m.seq();
        out.push(m);
        if at >= seq {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_redis_agree_on_random_sequences() {
    let Some(url) = store::redis::test_support::url() else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's suite");
        return;
    };
    for seed in 1..=40u64 {
        // Even seeds spread the keys over slot groups: a user's caps then live in another
        // slot than most of its rooms (see `store::redis::commit`).
        let groups = if seed % 2 == 0 { 5 } else { 1 };
        let config = PresenceConfig {
            max_offline_users_per_room: 2,
            offline_retention_ms: 60_000,
            max_sessions_per_user: 3,
            max_rooms_per_user: 1,
            max_sessions_per_room: 5,
            session_rate: RateLimit::UNLIMITED,
            ..base_config()
        };
        let clock = ManualClock::new(T0);
        let memory = Presence::start_with_clock(config.clone(), clock.clone());
        let redis = Presence::open_with_clock(
            PresenceConfig {
                redis_url: Some(url.clone()),
                redis_prefix: format!("diff-{seed}-{}", &SessionToken::generate().to_hex()[..8]),
                redis_slot_groups: groups,
                ..config
            },
            clock.clone(),
        )
        .await
        .unwrap();
        let mut watching = Vec::new();
        for room in ROOMS {
            let token = memory.room_token(room).unwrap();
            let mut m = memory.subscribe(&token, None).await.unwrap();
            let mut r = redis.subscribe(&token, None).await.unwrap();
            let first = next(&mut m).await;
            next(&mut r).await;
            watching.push((room, m, r, first));
        }
        let mut changes = (memory.changes(), redis.changes());
        let mut pair = Pair {
            memory,
            redis,
            clock,
            tokens: Default::default(),
            groups,
        };
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for n in 0..80 {
            pair.step(&mut rng, seed, n).await;
        }
        // Every room occupied and vacated by the same changes.
        let mut last = Vec::new();
        for room in ROOMS {
            last.push((room, pair.memory.list_room(room).await.unwrap().seq));
        }
        let on_memory = occupancy_until(&mut changes.0, &last).await;
        let on_redis = occupancy_until(&mut changes.1, &last).await;
        assert_eq!(on_memory, on_redis, "seed {seed}: occupancy differs");
        // Every change, in order, alike.
        for (room, mut m, mut r, first) in watching {
            let now = pair.memory.list_room(room).await.unwrap();
            let seq = now.seq;
            if seq == 0 {
                continue;
            }
            let on_memory = messages_until(&mut m, seq).await;
            // The first snapshot and every diff after it (each naming one session) make the
            // room as it is now, every user's sessions included.
            let mut view = RoomView::default();
            for message in std::iter::once(first).chain(on_memory.iter().cloned()) {
                view.apply(message);
            }
            assert_eq!(
                view.users(),
                now.users.as_slice(),
                "seed {seed}: room {room}'s diffs"
            );
            let on_redis = messages_until(&mut r, seq).await;
            if let Some(i) = (0..on_memory.len().max(on_redis.len()))
                .find(|&i| on_memory.get(i) != on_redis.get(i))
            {
                panic!(
                    "seed {seed}: room {room}'s message {i} differs\nmemory: {:?}\nredis: {:?}",
                    on_memory.get(i),
                    on_redis.get(i)
                );
            }
        }
    }
}
