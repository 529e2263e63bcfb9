//! The fast path ([`touch.lua`](touch.lua)) against a real redis-server: it extends a live
//! session only for a heartbeat that changes nothing and moves the deadline later, and leaves
//! every other case to the full heartbeat.

use super::*;
use crate::server::clock::ManualClock;
use crate::server::test_support::{req, T0};

async fn store() -> Option<(RedisPresence, ManualClock)> {
    let url = test_support::url()?;
    let clock = ManualClock::new(T0);
    let prefix = format!("touch-test-{}", SessionToken::generate().to_hex());
    let config = PresenceConfig::default()
        .room_token_secret(b"touch test secret".to_vec())
        .redis_prefix(&prefix[..28]);
    let store = RedisPresence::connect_with_clock(&url, config, clock.clone())
        .await
        .expect("PRESENCE_TEST_REDIS_URL answers");
    Some((store, clock))
}

async fn exp_of(store: &RedisPresence, room: &str, session: &str) -> Option<String> {
    let mut conn = store.inner.conn.clone();
    redis::cmd("HGET")
        .arg(store.session_key(room, session))
        .arg("exp")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_a_no_change_heartbeat_of_a_live_session_takes_the_fast_path() {
    let Some((store, clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let join = req("r1", "ann", "s1");
    let joined = store.heartbeat(&join).await.unwrap();
    let token = joined.session_token.clone();
    clock.advance(1_000);
    let later = T0 + 1_000 + 25_000;
    let touch = |user: &'static str, name: &'static str, away: bool, token: String| {
        let store = store.clone();
        let mut request = req("r1", user, "s1");
        request.away = away;
        async move {
            store
                .touch(
                    &request,
                    store.touch_for(&request, &token, name, T0 + 1_000, later),
                    store.inner.remembered.generation(),
                )
                .await
                .unwrap()
        }
    };
    // Not remembered here (another server's session): straight to Redis, batched.
    store.inner.remembered.forget_all();
    // Another token, another user, a new name or away flag: the full heartbeat decides.
    assert!(!touch("ann", "Name ann", false, SessionToken::generate().to_hex()).await);
    assert!(!touch("bob", "Name ann", false, token.clone()).await);
    assert!(!touch("ann", "Ann B.", false, token.clone()).await);
    assert!(!touch("ann", "Name ann", true, token.clone()).await);
    assert_eq!(
        exp_of(&store, "r1", "s1").await,
        Some(joined.expires_at.to_string())
    );
    // The same fields: extended, nothing else.
    assert!(touch("ann", "Name ann", false, token.clone()).await);
    assert_eq!(exp_of(&store, "r1", "s1").await, Some(later.to_string()));
    // Now remembered: the next one is answered from memory, and written by the next flush.
    let even_later = later + 10_000;
    let mut request = req("r1", "ann", "s1");
    request.session_token = Some(token.clone());
    assert!(store
        .touch(
            &request,
            store.touch_for(&request, &token, "Name ann", T0 + 2_000, even_later),
            store.inner.remembered.generation(),
        )
        .await
        .unwrap());
    assert_eq!(exp_of(&store, "r1", "s1").await, Some(later.to_string()));
    store.flush_remembered().await.unwrap();
    assert_eq!(
        exp_of(&store, "r1", "s1").await,
        Some(even_later.to_string())
    );
    // No such session (another session id, or the session ended): the full heartbeat rejoins.
    let mut other = req("r1", "ann", "s2");
    other.session_token = Some(token.clone());
    assert!(!store
        .touch(
            &other,
            store.touch_for(&other, &token, "Name ann", T0, later),
            store.inner.remembered.generation(),
        )
        .await
        .unwrap());
    store.disconnect(&token, None).await.unwrap();
    assert!(!touch("ann", "Name ann", false, token.clone()).await);
    // And through `heartbeat`: the same session comes back, joined anew.
    let mut again = join.clone();
    again.session_token = Some(token.clone());
    assert!(store.heartbeat(&again).await.unwrap().joined);
}

#[tokio::test]
async fn a_shorter_interval_is_left_to_the_full_heartbeat_which_queues_it_earlier() {
    let Some((store, _clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let mut hidden = req("r1", "ann", "s1");
    hidden.interval_ms = Some(60_000);
    let joined = store.heartbeat(&hidden).await.unwrap();
    let sooner = T0 + 25_000; // a 10 s interval again
    assert!(sooner < joined.expires_at);
    let request = req("r1", "ann", "s1");
    let touch = store.touch_for(&request, &joined.session_token, "Name ann", T0, sooner);
    assert!(!store
        .touch(&request, touch, store.inner.remembered.generation())
        .await
        .unwrap());
    // The full heartbeat queues it at the sooner deadline.
    let mut again = req("r1", "ann", "s1");
    again.session_token = Some(joined.session_token.clone());
    store.heartbeat(&again).await.unwrap();
    let mut conn = store.inner.conn.clone();
    let queued: Option<u64> = redis::cmd("ZSCORE")
        .arg(store.inner.layout.deadlines(0))
        .arg("s\nr1\ns1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queued, Some(sooner));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_arriving_together_share_a_batch_and_each_gets_its_own_answer() {
    let Some((store, _clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let mut tokens = Vec::new();
    for i in 0..60 {
        let joined = store
            .heartbeat(&req("r1", &format!("u{i}"), &format!("s{i}")))
            .await
            .unwrap();
        tokens.push(joined.session_token);
    }
    let later = T0 + 30_000;
    // As on a server that has not seen these sessions: each goes to Redis.
    store.inner.remembered.forget_all();
    // Every third one carries another session's token: refused, whatever its neighbours do.
    let answers = futures_util::future::join_all((0..60).map(|i| {
        let store = store.clone();
        let token = tokens[if i % 3 == 0 { (i + 1) % 60 } else { i }].clone();
        async move {
            let request = req("r1", &format!("u{i}"), &format!("s{i}"));
            let name = format!("Name u{i}");
            store
                .touch(
                    &request,
                    store.touch_for(&request, &token, &name, T0, later),
                    store.inner.remembered.generation(),
                )
                .await
                .unwrap()
        }
    }))
    .await;
    for (i, extended) in answers.into_iter().enumerate() {
        assert_eq!(extended, i % 3 != 0, "touch {i}");
        let expected = if i % 3 == 0 { T0 + 25_000 } else { later };
        assert_eq!(
            exp_of(&store, "r1", &format!("s{i}")).await,
            Some(expected.to_string())
        );
    }
}

#[tokio::test]
async fn a_heartbeat_older_than_a_goodbye_does_not_take_it_back() {
    let Some((store, clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let joined = store.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
    let token = joined.session_token.clone();
    let field = |name: &'static str| {
        let store = store.clone();
        async move {
            let mut conn = store.inner.conn.clone();
            let value: Option<String> = redis::cmd("HGET")
                .arg(store.session_key("r1", "s1"))
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap();
            value
        }
    };
    clock.advance(1_000);
    store.going(&token, None).await.unwrap();
    assert_eq!(field("bye").await, Some((T0 + 1_000).to_string()));
    // A heartbeat from before the goodbye (answered from memory, flushed after it): it extends
    // the session but leaves the goodbye standing.
    let mut request = req("r1", "ann", "s1");
    request.session_token = Some(token.clone());
    let before = store.touch_for(&request, &token, "Name ann", T0 + 500, T0 + 30_000);
    assert!(store
        .touch(&request, before, store.inner.remembered.generation())
        .await
        .unwrap());
    assert_eq!(field("bye").await, Some((T0 + 1_000).to_string()));
    assert!(field("grace").await.is_some());
    // One from after it (the reloaded page) takes it back.
    let after = store.touch_for(&request, &token, "Name ann", T0 + 1_200, T0 + 30_000);
    assert!(store
        .touch(&request, after, store.inner.remembered.generation())
        .await
        .unwrap());
    assert_eq!(field("bye").await, None);
    assert_eq!(field("grace").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_set_through_one_server_stops_the_others_answering_from_memory() {
    let Some((a, clock)) = store().await else {
        eprintln!("skipped: set PRESENCE_TEST_REDIS_URL to run the Redis store's tests");
        return;
    };
    let b = RedisPresence::connect_with_clock(
        &test_support::url().unwrap(),
        a.inner.config.clone(),
        clock.clone(),
    )
    .await
    .unwrap();
    let joined = b.heartbeat(&req("r1", "ann", "s1")).await.unwrap();
    let token = joined.session_token.clone();
    let mut request = req("r1", "ann", "s1");
    request.session_token = Some(token.clone());
    let touch = |now: u64| b.touch_for(&request, &token, "Name ann", now, now + 25_000);
    // B has seen it heartbeat: B answers from memory.
    assert!(b.inner.remembered.answer(&request, &touch(T0 + 100)));
    // The page says it is going, through A: B forgets it (its next heartbeat goes to Redis,
    // which takes the goodbye back in time).
    a.going(&token, None).await.unwrap();
    let started = std::time::Instant::now();
    while b.inner.remembered.answer(&request, &touch(T0 + 200)) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B still answers from memory"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
