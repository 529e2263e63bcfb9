//! Fan-out: N WebSocket subscribers in one room of an in-process server on loopback. For each
//! of J joins, the time from the join until the last subscriber has its `joined` frame; then the
//! bytes pushed while every joined session sends no-change heartbeats (should be 0).
//!
//! With `--redis URL` the room lives in Redis and there are two servers in the process: the
//! subscribers watch through one, the joins go through the other, so the time measured is the
//! cross-server path (script, pub/sub, the other server's hub, its WebSockets).

use crate::args::Args;
use futures::StreamExt;
use leptos_presence::ssr::{Presence, PresenceConfig};
use presence_core::wire::HeartbeatRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub async fn run(args: &Args) -> Result<(), String> {
    let subscribers = args.num("subscribers", 1_000)? as usize;
    let joins = args.num("joins", 200)? as usize;
    crate::memory::raise_fd_limit()?;
    let redis = args.get("redis", "");
    let (presence, watched) = if redis.is_empty() {
        let presence = Presence::start(PresenceConfig::default());
        (presence.clone(), presence)
    } else {
        let config = PresenceConfig::default()
            .redis_url(redis.clone())
            .redis_prefix(format!("bench-fanout-{}", std::process::id()))
            .room_token_secret(b"benchmark secret, loopback only".to_vec());
        let open = || async {
            Presence::open(config.clone())
                .await
                .map_err(|e| format!("redis: {e}"))
        };
        (open().await?, open().await?)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = crate::serve::router(watched.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let room_token = presence.room_token("fanout").map_err(|e| e.to_string())?;
    let url = format!("ws://{addr}/api/presence/subscribe?room_token={room_token}");
    let bytes = Arc::new(AtomicU64::new(0));
    let (events, mut received) = mpsc::unbounded_channel::<(u64, Instant)>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let started = Instant::now();
    for _ in 0..subscribers {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| format!("subscriber could not connect: {e}"))?;
        let (bytes, events, ready_tx) = (bytes.clone(), events.clone(), ready_tx.clone());
        tokio::spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                if text.starts_with(r#"{"type":"snapshot""#) {
                    let _ = ready_tx.send(());
                } else if text.starts_with(r#"{"type":"joined""#) {
                    let at = Instant::now();
                    if let Some(seq) = seq_of(&text) {
                        let _ = events.send((seq, at));
                    }
                }
            }
        });
    }
    for _ in 0..subscribers {
        tokio::time::timeout(Duration::from_secs(30), ready.recv())
            .await
            .map_err(|_| "subscribers did not all get their snapshot within 30 s".to_string())?;
    }
    let connect_time = started.elapsed();

    let mut latencies = Vec::with_capacity(joins);
    let mut tokens = Vec::with_capacity(joins);
    for j in 0..joins {
        let request = join_request(j);
        let t0 = Instant::now();
        let response = presence
            .heartbeat(&request)
            .await
            .map_err(|e| e.to_string())?;
        let expected = j as u64 + 1;
        let mut got = 0;
        let mut last = t0;
        while got < subscribers {
            let (seq, at) = tokio::time::timeout(Duration::from_secs(10), received.recv())
                .await
                .map_err(|_| {
                    format!(
                        "join {j}: only {got} of {subscribers} subscribers heard it within 10 s"
                    )
                })?
                .ok_or("subscribers gone")?;
            if seq == expected {
                got += 1;
                last = last.max(at);
            }
        }
        latencies.push(last - t0);
        tokens.push((request, response.session_token));
    }

    // No-change heartbeats: every joined session, three times.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = bytes.load(Ordering::Relaxed);
    for _ in 0..3 {
        for (request, token) in &tokens {
            let mut again = request.clone();
            again.session_token = Some(token.clone());
            let ack = presence
                .heartbeat(&again)
                .await
                .map_err(|e| e.to_string())?;
            assert!(!ack.joined);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushed = bytes.load(Ordering::Relaxed) - before;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(latencies[((latencies.len() as f64 - 1.0) * p).round() as usize]);
    println!(
        "fanout store={} subscribers={subscribers} joins={joins} connect_s={:.2} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} nochange_heartbeats={} nochange_bytes_pushed={pushed}",
        if redis.is_empty() { "memory" } else { "redis-2-servers" },
        connect_time.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        tokens.len() * 3,
    );
    if pushed != 0 {
        return Err(format!(
            "{pushed} bytes were pushed for heartbeats that changed nothing"
        ));
    }
    Ok(())
}

fn join_request(j: usize) -> HeartbeatRequest {
    HeartbeatRequest::new(
        "fanout",
        format!("joiner-{j}"),
        format!("joiner-session-{j}"),
        format!("Joiner {j}"),
    )
    .interval_ms(300_000)
}

/// The `seq` of a diff frame (`{"type":"…","seq":N,…}`), without parsing the rest.
fn seq_of(text: &str) -> Option<u64> {
    let at = text.find(r#""seq":"#)? + 6;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
