//! The engine in process, one thread: `cargo bench -p presence-core --features server`.
//!
//! Each benchmark reports time per operation and operations per second (criterion's
//! "thrpt"). The rooms are unwatched except where a subscriber is named: publishing to
//! subscribers is measured by the fan-out benchmark in `presence-bench`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use presence_core::server::{MemoryPresence as Presence, PresenceConfig, RateLimit};
use presence_core::wire::HeartbeatRequest;
use serde_json::json;
use std::hint::black_box;

fn request(room: &str, i: usize) -> HeartbeatRequest {
    HeartbeatRequest::new(
        room,
        format!("user-{i}"),
        format!("session-{i}"),
        format!("User {i}"),
    )
    .interval_ms(10_000)
}

/// A room of `n` live sessions, and for each the request that heartbeats it without change.
fn room_of(presence: &Presence, room: &str, n: usize) -> (Vec<HeartbeatRequest>, Vec<String>) {
    let mut again = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = request(room, i);
        let response = presence.heartbeat(&r).expect("join");
        r.session_token = Some(response.session_token.clone());
        tokens.push(response.session_token);
        again.push(r);
    }
    (again, tokens)
}

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    // A finite rate far above what the loop sends: the limiter's bookkeeping stays in the path.
    let presence =
        Presence::start(PresenceConfig::default().session_rate(RateLimit::new(1e12, u32::MAX)));
    let (heartbeats, tokens) = room_of(&presence, "bench", 1_000);

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));

    let mut i = 0;
    group.bench_function("heartbeat, no change (ack)", |b| {
        b.iter(|| {
            i = (i + 1) % heartbeats.len();
            black_box(presence.heartbeat_ack(black_box(&heartbeats[i])).unwrap())
        })
    });
    group.bench_function("heartbeat, no change (with response strings)", |b| {
        b.iter(|| {
            i = (i + 1) % heartbeats.len();
            black_box(presence.heartbeat(black_box(&heartbeats[i])).unwrap())
        })
    });

    let mut n = 0u64;
    group.bench_function("join + leave", |b| {
        b.iter_batched(
            || {
                n += 1;
                request("bench-churn", n as usize)
            },
            |r| {
                let joined = presence.heartbeat(&r).unwrap();
                presence.disconnect(&joined.session_token).unwrap();
            },
            BatchSize::SmallInput,
        )
    });

    let states = [
        json!({"section": "intro", "typing": false}),
        json!({"section": "faq", "typing": true}),
    ];
    let mut flip = 0;
    let room_token = presence.room_token("bench").unwrap();
    let mut watcher = None;
    for (name, watched) in [
        ("state update", false),
        ("state update, watched room", true),
    ] {
        if watched {
            // One subscriber: the change is now built into an event and sent.
            watcher = Some(presence.subscribe(&room_token, None).unwrap());
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                flip += 1;
                let t = &tokens[flip % tokens.len()];
                presence
                    .update_state(t, states[flip / tokens.len() % 2].clone())
                    .unwrap()
            })
        });
    }
    drop(watcher);
    group.finish();

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("list of a 1,000-session room", |b| {
        b.iter(|| black_box(presence.list_room("bench")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = engine
}
criterion_main!(benches);
