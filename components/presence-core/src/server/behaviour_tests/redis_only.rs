//! What only a shared store can do: several servers on one Redis, and Redis going away.

use super::*;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Runs each named `async fn(Kind)` on one Redis, on one Redis with slot groups (`groups::…`)
/// and on a Redis Cluster (`cluster::…`).
macro_rules! on_redis_and_a_cluster {
    ($($name:ident),* $(,)?) => {
        mod one_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::Redis).await
            })*
        }
        mod groups {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::RedisGroups).await
            })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Kind::RedisCluster).await
            })*
        }
    };
}

on_redis_and_a_cluster!(
    a_join_on_one_server_reaches_subscribers_on_another_within_200_ms,
    each_deadline_is_acted_on_exactly_once_however_many_servers_run,
    a_dead_servers_sessions_expire_on_time_through_the_others,
    changes_made_through_one_server_reach_server_side_readers_on_another,
    a_heartbeat_answered_from_memory_never_lets_another_server_expire_its_session,
    a_sessions_rate_holds_across_servers,
    a_slot_group_that_lost_its_data_never_shows_a_watcher_a_live_user_gone,
);

/// Collects messages until `done` says the view is complete, or fails after 5 s.
async fn view_until(sub: &mut Subscription, view: &mut RoomView, done: impl Fn(&RoomView) -> bool) {
    while !done(view) {
        let message = next(sub).await;
        view.apply(message);
    }
}

async fn a_join_on_one_server_reaches_subscribers_on_another_within_200_ms(kind: Kind) {
    let Some(a) = open(kind, base_config()).await else {
        return;
    };
    let b = a.peer().await;
    let token = b.room_token("r1").unwrap();
    let mut on_b = b.subscribe(&token, None).await.unwrap();
    next(&mut on_b).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        a.join("r1", &format!("u{i}"), &format!("s{i}")).await;
        match next(&mut on_b).await {
            RoomMessage::Joined { user, .. } => assert_eq!(user.user_id, format!("u{i}")),
            other => panic!("{other:?}"),
        }
        worst = worst.max(started.elapsed());
    }
    assert!(
        worst < Duration::from_millis(200),
        "slowest join took {worst:?}"
    );
    // And back: an update through B reaches a subscriber on A.
    let mut on_a = a.presence.subscribe(&token, None).await.unwrap();
    next(&mut on_a).await;
    let joined = b.heartbeat(&req("r1", "bea", "sb")).await.unwrap();
    assert!(matches!(next(&mut on_a).await, RoomMessage::Joined { .. }));
    b.update_state(&joined.session_token, json!({"typing": true}))
        .await
        .unwrap();
    assert!(matches!(next(&mut on_a).await, RoomMessage::Updated { .. }));
    // A token from one server works on the other (they share the store and the room key).
    a.presence.disconnect(&joined.session_token).await.unwrap();
    assert!(matches!(next(&mut on_b).await, RoomMessage::Joined { .. }));
    assert!(matches!(next(&mut on_b).await, RoomMessage::Updated { .. }));
    assert!(matches!(next(&mut on_b).await, RoomMessage::Left { .. }));
}

async fn each_deadline_is_acted_on_exactly_once_however_many_servers_run(kind: Kind) {
    let Some(a) = open(kind, base_config()).await else {
        return;
    };
    let (b, c) = (a.peer().await, a.peer().await);
    for i in 0..30 {
        a.join("r1", &format!("u{i}"), &format!("s{i}")).await;
    }
    let token = a.presence.room_token("r1").unwrap();
    let mut subs = Vec::new();
    for server in [&a.presence, &b, &c] {
        let mut sub = server.subscribe(&token, None).await.unwrap();
        next(&mut sub).await;
        subs.push(sub);
    }
    // Three schedulers wake at the same deadline.
    a.clock.advance(25_000);
    for sub in &mut subs {
        let mut lefts = 0;
        let mut seqs = Vec::new();
        while lefts < 30 {
            match next(sub).await {
                RoomMessage::Left { seq, .. } => {
                    lefts += 1;
                    seqs.push(seq);
                }
                other => panic!("only leaves expected, got {other:?}"),
            }
        }
        assert_eq!(
            seqs,
            (31..=60).collect::<Vec<u64>>(),
            "each session left once"
        );
        nothing_within(sub, 150).await;
    }
}

async fn a_dead_servers_sessions_expire_on_time_through_the_others(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    let survivor = h.peer().await;
    let ann = h.join("r1", "ann", "s1").await;
    // The tab's live subscription is on the server that dies with it.
    let held = h
        .presence
        .subscribe(&ann.room_token, Some(&ann.session_token))
        .await
        .unwrap();
    let mut watcher = survivor.subscribe(&ann.room_token, None).await.unwrap();
    next(&mut watcher).await;
    // The server dies: no release, no disconnect, its tasks gone.
    std::mem::forget(held);
    let clock = h.clock.clone();
    drop(h);
    settle().await;
    clock.advance(24_999);
    nothing_within(&mut watcher, 150).await;
    clock.advance(1);
    match next(&mut watcher).await {
        RoomMessage::Left { reason, user, .. } => {
            assert_eq!(reason, LeaveReason::Expired);
            assert!(!user.online);
        }
        other => panic!("{other:?}"),
    }
}

/// A `redis-server` of this test's own, so it can be killed and restarted.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
    /// Its persistence settings: none, or an append-only file in a directory of its own.
    persistence: Vec<String>,
}

impl OwnRedis {
    /// One that keeps nothing across a restart.
    fn start() -> Option<Self> {
        Self::start_with(vec![
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
        ])
    }

    /// One that writes every change to an append-only file before answering.
    fn start_persistent() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "presence-aof-{}",
            SessionToken::generate().to_hex()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        Self::start_with(vec![
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
        ])
    }

    fn start_with(persistence: Vec<String>) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut redis = OwnRedis {
            port,
            child: None,
            persistence,
        };
        redis.spawn()?;
        Some(redis)
    }

    fn spawn(&mut self) -> Option<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: nothing saved, every connection cut.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A redis-server of the test's own (started by `start`), a clock, and a config for it; `None`
/// (the test skips) without `PRESENCE_TEST_REDIS_URL`.
fn own_redis(start: fn() -> Option<OwnRedis>) -> Option<(OwnRedis, ManualClock, PresenceConfig)> {
    if store::redis::test_support::url().is_none() {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's suite");
        return None;
    }
    let Some(redis) = start() else {
        panic!("PRESENCE_TEST_REDIS_URL is set but `redis-server` could not be started here");
    };
    let config = PresenceConfig {
        redis_url: Some(redis.url()),
        ..base_config()
    };
    Some((redis, ManualClock::new(T0), config))
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal to a process (`STOP` pauses it, `CONT` resumes it).
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_timed_out_while_redis_was_paused_is_made_or_found_by_its_retry() {
    let Some((redis, clock, config)) = own_redis(OwnRedis::start) else {
        return;
    };
    let presence = Presence::open_with_clock(config, clock.clone())
        .await
        .unwrap();
    let token = SessionToken::generate().to_hex();
    let mut join = req("r1", "ann", "s1");
    join.session_token = Some(token.clone());
    // A join that carries state (as `use_presence`'s first heartbeat does when the app gave
    // one) goes straight to the full heartbeat; a bare one first tries the fast path, which a
    // paused Redis would hold instead.
    join.state = Some(json!({"section": "intro"}));
    // A server that has been running has its scripts cached in Redis (as here after one call),
    // so the paused call is one EVALSHA that Redis runs when it resumes.
    presence.list_room("r1").await.unwrap();
    let child = redis.child.as_ref().unwrap();
    signal(child, "STOP");
    let failed = presence.heartbeat(&join).await;
    assert!(
        matches!(failed, Err(PresenceError::Unavailable { .. })),
        "{failed:?}"
    );
    signal(child, "CONT");
    // The join is a read, then a guarded write: whichever the pause caught, the join landed
    // once or not at all. The client's retry (same session, same proposed token) makes it or
    // finds it, under the token it proposed; and a retry of a join whose answer was lost finds
    // that session too.
    let retry = presence.heartbeat(&join).await.unwrap();
    assert_eq!(retry.session_token, token);
    let again = presence.heartbeat(&join).await.unwrap();
    assert!(!again.joined);
    assert_eq!(again.session_token, token);
    let listed = presence.list_room("r1").await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].sessions.len(), 1, "no ghost beside it");
    presence
        .disconnect(&token)
        .await
        .expect("the client holds its token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_sessions_return_with_their_next_heartbeat_and_views_resync() {
    let Some((mut redis, clock, config)) = own_redis(OwnRedis::start) else {
        return;
    };
    let a = Presence::open_with_clock(config.clone(), clock.clone())
        .await
        .unwrap();
    let b = Presence::open_with_clock(config, clock.clone())
        .await
        .unwrap();
    let ann = a.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
    let bob = b.heartbeat(&req("r1", "bob", "s2")).await.unwrap();
    let mut watcher = b.subscribe(&ann.room_token, None).await.unwrap();
    let mut view = RoomView::default();
    view.apply(next(&mut watcher).await);
    assert_eq!(view.users().len(), 2);

    redis.kill();
    // While it is gone: a clear, typed error, and nothing panics. (A session whose deadline is
    // far off may be answered from memory until the next flush finds Redis gone.)
    let started = Instant::now();
    let during = loop {
        match a.heartbeat(&again(req("r1", "ann", "s1"), &ann)).await {
            Ok(_) if started.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => break other,
        }
    };
    match during {
        Err(PresenceError::Unavailable { message }) => {
            assert!(message.contains("Redis"), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        b.list(&ann.room_token).await,
        Err(PresenceError::Unavailable { .. })
    ));

    redis.spawn().expect("redis restarts");
    // Each client's next heartbeat (old token: stale now) makes its session again.
    let started = Instant::now();
    let back = loop {
        match a.heartbeat(&again(req("r1", "ann", "s1"), &ann)).await {
            Ok(back) => break back,
            Err(PresenceError::Unavailable { .. })
                if started.elapsed() < Duration::from_secs(5) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(back.joined, "the session is made again");
    assert_eq!(
        back.session_token, ann.session_token,
        "with the token the client already holds (it proposes it for the new session)"
    );
    b.heartbeat(&again(req("r1", "bob", "s2"), &bob))
        .await
        .unwrap();
    // The watcher resynced from a snapshot (Redis's seq restarted) and then followed the rejoins.
    view_until(&mut watcher, &mut view, |v| {
        v.users().len() == 2 && v.users().iter().all(|u| u.online)
    })
    .await;
    assert_eq!(
        view.users(),
        b.list_room("r1").await.unwrap().users.as_slice()
    );
    // The tokens work across servers, and die with their session.
    b.disconnect(&back.session_token).await.unwrap();
    assert_eq!(
        a.disconnect(&ann.session_token).await,
        Err(PresenceError::InvalidSessionToken)
    );
    // And expiry runs again: bob's deadline passes, a scheduler on either server ends him (once
    // the hold that follows an outage is over: heartbeats refused meanwhile come first).
    settle().await;
    clock.advance(5_000);
    settle().await;
    clock.advance(20_000);
    view_until(&mut watcher, &mut view, |v| {
        v.users().iter().all(|u| !u.online)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_missed_messages_resyncs_from_a_snapshot_and_carries_on() {
    let Some(h) = open(Kind::Redis, base_config()).await else {
        return;
    };
    let ann = h.join("r1", "ann", "s1").await;
    let mut sub = h.watch(&ann.room_token).await;
    // A message from the future on the room's channel, as if two were lost on the way (it
    // cannot be placed: no snapshot will ever reach its seq).
    let client = ::redis::Client::open(h.config.redis_url.clone().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let forged = json!({"type": "removed", "seq": 4, "user_id": "nobody"}).to_string();
    let channel = format!("{}:ev:r1", h.config.redis_prefix);
    // Sent once the hub listens on the channel (PUBLISH says how many received it): a message
    // published before its SUBSCRIBE landed would be lost, and no resync would ever come.
    let started = std::time::Instant::now();
    loop {
        let received: i64 = ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&forged)
            .query_async(&mut conn)
            .await
            .unwrap();
        if received > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "nobody listens on {channel}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match next(&mut sub).await {
        RoomMessage::Snapshot(s) => {
            assert_eq!(s.seq, 1);
            assert_eq!(users(&s), vec![("ann".into(), true)]);
        }
        other => panic!("expected a resync snapshot, got {other:?}"),
    }
    // The hub tries a few more snapshots (the gap stays: nothing ever reaches seq 4), which may
    // carry bob's join instead of its diff; then it gives up on the forged message and carries on
    // with diffs.
    let bob = h.join("r1", "bob", "s2").await;
    let mut view = RoomView::default();
    view.apply(RoomMessage::Snapshot(h.snapshot("r1").await));
    let mut seen = RoomView::default();
    while seen.users() != view.users() {
        seen.apply(next(&mut sub).await);
    }
    // Once the hub has given up on the forged message, changes arrive as diffs again. (Under
    // load its last retries may still be running: give it a few changes to show it.)
    let mut back_to_diffs = false;
    for n in 0..20 {
        let state = json!({ "n": n });
        h.presence
            .update_state(&bob.session_token, state.clone())
            .await
            .unwrap();
        loop {
            let message = next(&mut sub).await;
            let is_diff = !matches!(message, RoomMessage::Snapshot(_));
            seen.apply(message);
            let bobs = seen.users().iter().find(|u| u.user_id == "bob");
            if bobs.is_some_and(|u| u.sessions[0].state.as_ref() == Some(&state)) {
                back_to_diffs = is_diff;
                break;
            }
        }
        if back_to_diffs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back_to_diffs, "the hub never went back to diffs");
    assert_eq!(seen.users(), h.snapshot("r1").await.users.as_slice());
}

async fn changes_made_through_one_server_reach_server_side_readers_on_another(kind: Kind) {
    let Some(a) = open(kind, base_config()).await else {
        return;
    };
    let b = a.peer().await;
    let mut on_b = b.changes();
    let joined = a.join("r1", "ann", "s1").await;
    a.presence.disconnect(&joined.session_token).await.unwrap();
    for expected in ["joined", "left"] {
        let change = tokio::time::timeout(Duration::from_secs(5), on_b.next())
            .await
            .expect("a change within 5 s")
            .unwrap();
        assert_eq!(&*change.room, "r1");
        assert_eq!(kind_of(change.message.message()), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_room_is_read_for_a_page_render_without_a_round_trip() {
    let Some(a) = open(Kind::Redis, base_config()).await else {
        return;
    };
    let b = a.peer().await;
    // Nobody on B watches r1: a render there gets nothing (and does not wait for Redis).
    a.join("r1", "ann", "s1").await;
    assert_eq!(b.list_room_now("r1"), None);
    // Someone on B watches it: B's renders see every change relayed since, made on A.
    let token = b.room_token("r1").unwrap();
    let mut on_b = b.subscribe(&token, None).await.unwrap();
    let mut view = RoomView::default();
    view.apply(next(&mut on_b).await);
    let bea = a.join("r1", "bea", "s2").await;
    a.presence
        .update_state(&bea.session_token, json!({"typing": true}))
        .await
        .unwrap();
    a.presence.disconnect(&bea.session_token).await.unwrap();
    view_until(&mut on_b, &mut view, |v| {
        v.users().iter().any(|u| !u.online)
    })
    .await;
    let now = b.list_room_now("r1").expect("watched here");
    assert_eq!(now, a.presence.list_room("r1").await.unwrap());
    assert_eq!(now.users, view.users());
    // The last watcher gone: nothing again.
    drop(on_b);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.list_room_now("r1"), None);
}

async fn a_heartbeat_answered_from_memory_never_lets_another_server_expire_its_session(kind: Kind) {
    let Some(a) = open(kind, base_config()).await else {
        return;
    };
    let b = a.peer().await;
    let ann = a.join("r1", "ann", "s1").await; // deadline T0 + 25 s in Redis
    let token = b.room_token("r1").unwrap();
    let mut on_b = b.subscribe(&token, None).await.unwrap();
    next(&mut on_b).await;
    // On time, with 15 s to spare: answered from memory, written by the next flush.
    a.clock.advance(10_000);
    assert!(
        !a.presence
            .heartbeat(&again(req("r1", "ann", "s1"), &ann))
            .await
            .unwrap()
            .joined
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Late, with under five seconds to spare before the deadline Redis has (T0 + 35 s): written at
    // once, not left to a flush that another server's expiry could beat.
    a.clock.advance(24_500);
    assert!(
        !a.presence
            .heartbeat(&again(req("r1", "ann", "s1"), &ann))
            .await
            .unwrap()
            .joined
    );
    a.clock.advance(1_000); // past T0 + 35 s: B's scheduler looks
    nothing_within(&mut on_b, 500).await;
    // Ended through B: A answers from memory at most until its next flush, then the next
    // heartbeat through A rejoins.
    b.disconnect(&ann.session_token).await.unwrap();
    assert!(matches!(next(&mut on_b).await, RoomMessage::Left { .. }));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = a
        .presence
        .heartbeat(&again(req("r1", "ann", "s1"), &ann))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let back = a
        .presence
        .heartbeat(&again(req("r1", "ann", "s1"), &ann))
        .await
        .unwrap();
    assert!(back.joined, "rejoined within a flush");
}

/// Two servers, each holding its user's session through that tab's subscription; a watcher on one.
async fn two_servers_holding_sessions(
    config: PresenceConfig,
    clock: &ManualClock,
) -> (Presence, Presence, Vec<Subscription>, Subscription) {
    let a = Presence::open_with_clock(config.clone(), clock.clone())
        .await
        .unwrap();
    let b = Presence::open_with_clock(config, clock.clone())
        .await
        .unwrap();
    let mut ann = req("r1", "ann", "s1");
    ann.state = Some(json!({"section": "intro"}));
    let ann = a.heartbeat(&ann).await.unwrap();
    let bob = b.heartbeat(&req("r1", "bob", "s2")).await.unwrap();
    let tabs = vec![
        a.subscribe(&ann.room_token, Some(&ann.session_token))
            .await
            .unwrap(),
        b.subscribe(&bob.room_token, Some(&bob.session_token))
            .await
            .unwrap(),
    ];
    let watcher = b.subscribe(&ann.room_token, None).await.unwrap();
    (a, b, tabs, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_never_shows_a_watcher_a_live_user_gone() {
    let Some((mut redis, clock, config)) = own_redis(OwnRedis::start) else {
        return;
    };
    let (a, b, _tabs, mut watcher) = two_servers_holding_sessions(config, &clock).await;
    let mut view = RoomView::default();
    view.apply(next(&mut watcher).await);
    let both_there = |v: &RoomView| {
        v.users().len() == 2 && v.users().iter().all(|u| u.online && u.sessions.len() == 1)
    };
    assert!(both_there(&view));

    redis.kill();
    redis.spawn().expect("redis restarts, empty");
    no_blink_then_listed_again(&mut watcher, &mut view, both_there, &a, "restart").await;
    drop(b);
}

/// For 6 s, every list the watcher sees passes `fine` (no blink), and at least one snapshot
/// comes (the watcher resynced after the `what`); then Redis lists both users again, with
/// their tokens, names and state, as the watcher does.
async fn no_blink_then_listed_again(
    watcher: &mut Subscription,
    view: &mut RoomView,
    fine: impl Fn(&RoomView) -> bool,
    a: &Presence,
    what: &str,
) {
    let started = Instant::now();
    let mut snapshots = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let Ok(message) = tokio::time::timeout(Duration::from_millis(200), watcher.next()).await
        else {
            continue;
        };
        let message = message.message().clone();
        if matches!(message, RoomMessage::Snapshot(_)) {
            snapshots += 1;
        }
        view.apply(message);
        assert!(fine(view), "a watcher saw {:?}", view.users());
    }
    assert!(snapshots >= 1, "the watcher was resynced after the {what}");
    let listed = a.list_room("r1").await.unwrap();
    assert_eq!(listed.users.len(), 2);
    let ann = listed.users.iter().find(|u| u.user_id == "ann").unwrap();
    assert_eq!(ann.sessions[0].state, Some(json!({"section": "intro"})));
    assert_eq!(view.users(), listed.users.as_slice());
}

/// A Cluster shard restarted empty (its slots' data gone, pub/sub on another node up), as
/// the keys of one slot group deleted: each server notices within a second (the group's epoch)
/// and makes its sessions there again before its watchers resync.
async fn a_slot_group_that_lost_its_data_never_shows_a_watcher_a_live_user_gone(kind: Kind) {
    let Some(h) = open(kind, base_config()).await else {
        return;
    };
    if kind.slot_groups() == 1 {
        return; // (one group: the whole Redis restarting, above)
    }
    let (a, b, _tabs, mut watcher) = two_servers_holding_sessions(h.config.clone(), &h.clock).await;
    let mut view = RoomView::default();
    view.apply(next(&mut watcher).await);
    let both_there = |v: &RoomView| {
        v.users().len() == 2 && v.users().iter().all(|u| u.online && u.sessions.len() == 1)
    };
    assert!(both_there(&view));
    // Every key of r1's group, on whichever node holds them.
    let pattern = store::redis::test_support::group_pattern(&h.config, "r1");
    let mut lost = 0;
    let nodes = h.config.redis_url.clone().unwrap();
    for node in nodes.split(',').filter(|n| !n.is_empty()) {
        let (keys, mut conn) = store::redis::test_support::keys_on_node(node, &pattern).await;
        for key in keys {
            let _: i64 = ::redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            lost += 1;
        }
    }
    assert!(lost > 0, "no keys matched {pattern}");
    no_blink_then_listed_again(&mut watcher, &mut view, both_there, &a, "loss").await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_append_only_file_offline_users_last_seen_survives_a_crash() {
    let Some((mut redis, clock, config)) = own_redis(OwnRedis::start_persistent) else {
        return;
    };
    let a = Presence::open_with_clock(config, clock.clone())
        .await
        .unwrap();
    let ann = a.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
    clock.advance(3_000);
    a.disconnect(&ann.session_token).await.unwrap();
    let before = a.list_room("r1").await.unwrap();
    assert_eq!(before.users[0].last_seen, Some(T0 + 3_000));

    redis.kill(); // SIGKILL: only what the append-only file has
    redis.spawn().expect("redis restarts from its file");
    let started = Instant::now();
    let after = loop {
        match a.list_room("r1").await {
            Ok(after) => break after,
            Err(_) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        after.users, before.users,
        "the offline user and its last seen are back"
    );
}

/// Sends one request every 50 ms of the clock for `ms` through `servers` in turn, `per` at a
/// time, with a real pause every 250 ms of it (so flushes run): how many `admit` admitted.
async fn paced<F, Fut>(
    servers: &[&Presence],
    per: u64,
    clock: &ManualClock,
    ms: u64,
    mut admit: F,
) -> usize
where
    F: FnMut(Presence) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut admitted = 0;
    for i in 0..ms / 50 {
        clock.advance(50);
        if admit(servers[(i / per) as usize % servers.len()].clone()).await {
            admitted += 1;
        }
        if i % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    admitted
}

/// Heartbeats of one session (`user`'s, in room r1) through `servers` (see [`paced`]): how
/// many were admitted, its join included.
async fn admitted_through(
    servers: &[&Presence],
    per: u64,
    clock: &ManualClock,
    user: &str,
    ms: u64,
) -> usize {
    let joined = servers[0].heartbeat(&req("r1", user, user)).await.unwrap();
    let beats = paced(servers, per, clock, ms, |server| {
        let beat = again(req("r1", user, user), &joined);
        async move {
            match server.heartbeat(&beat).await {
                Ok(_) => true,
                Err(PresenceError::TooManyRequests { .. }) => false,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    1 + beats
}

async fn a_sessions_rate_holds_across_servers(kind: Kind) {
    let config = PresenceConfig {
        session_rate: RateLimit::new(2.0, 4),
        ..base_config()
    };
    let Some(a) = open(kind, config).await else {
        return;
    };
    let b = a.peer().await;
    // 4 s through one server: its burst and 2 a second.
    let alone = admitted_through(&[&a.presence], 1, &a.clock, "ann", 4_000).await;
    assert!((11..=13).contains(&alone), "{alone}");
    // The same through two servers in turn: not twice as many. At most one more burst, taken
    // from the second server before the first flush told it what the first had admitted.
    let spread = admitted_through(&[&a.presence, &b], 1, &a.clock, "bob", 4_000).await;
    assert!(
        spread <= alone + 4,
        "{spread} through two servers, {alone} through one"
    );
    // Two seconds through one, then two through the other, and so on for 8 s: long enough for
    // an idle server's own bucket to refill. Over the whole run the client still gets no more
    // than one server would admit (the join, its burst and 2 a second: 21) plus one burst.
    let switched = admitted_through(&[&a.presence, &b], 40, &a.clock, "cy", 8_000).await;
    assert!(switched <= 21 + 4, "{switched} switching servers every 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_rate_holds_across_servers() {
    let config = PresenceConfig {
        address_rate: RateLimit::new(2.0, 4),
        ..base_config()
    };
    let Some(a) = open(Kind::Redis, config).await else {
        return;
    };
    let b = a.peer().await;
    // One request every 50 ms for 4 s, through one server, then through both in turn.
    let (one, two): (std::net::IpAddr, std::net::IpAddr) =
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let alone = paced(&[&a.presence], 1, &a.clock, 4_000, |server| async move {
        server.check_address(one).is_ok()
    })
    .await;
    assert!((11..=13).contains(&alone), "{alone}");
    let spread = paced(
        &[&a.presence, &b],
        1,
        &a.clock,
        4_000,
        |server| async move { server.check_address(two).is_ok() },
    )
    .await;
    assert!(
        spread <= alone + 4,
        "{spread} through two servers, {alone} through one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_invisible_is_never_answered_from_what_another_server_last_saw() {
    let Some(a) = open(Kind::Redis, base_config()).await else {
        return;
    };
    let b = a.peer().await;
    // Eve is invisible through server A, twice (A now remembers her that way).
    let hidden = req("r1", "eve", "e1").invisible(true);
    let joined = a.presence.heartbeat(&hidden).await.unwrap();
    let hidden = again(hidden, &joined);
    a.presence.heartbeat(&hidden).await.unwrap();
    let mut watcher = a.watch(&joined.room_token).await;
    // She shows herself through server B: one joined.
    b.heartbeat(&hidden.clone().invisible(false)).await.unwrap();
    assert!(matches!(
        next(&mut watcher).await,
        RoomMessage::Joined { .. }
    ));
    // Invisible again, through A: A's memory of her as invisible must not answer it.
    a.presence.heartbeat(&hidden).await.unwrap();
    match next(&mut watcher).await {
        RoomMessage::Left { user, .. } => assert!(!user.online),
        other => panic!("{other:?}"),
    }
}
