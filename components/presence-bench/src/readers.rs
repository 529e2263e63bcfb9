//! Readers of one big room against heartbeats in another, on a running server: does reading a
//! room of N sessions (`GET /api/presence/list`) slow down presence in unrelated rooms?
//!
//! Joins N sessions to room "readers-big" and one to "readers-small", then heartbeats the small
//! room's session back to back for S seconds twice: alone, and while R clients each fetch the big
//! room's list back to back. Prints both latency distributions and their ratio, and how many
//! lists were served and refused (429). The readers connect from 127.0.0.2, the heartbeating
//! client from 127.0.0.1, so a per-address limit counts them apart. The server's session rate
//! must be off (`PRESENCE_SESSION_RATE=0`: one session heartbeats back to back); its address rate
//! is what is being measured (off: the cost of reading; on: the defaults' protection).

use crate::args::Args;
use crate::http1::Conn;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(args: &Args) -> Result<(), String> {
    let url = args.get("url", "http://127.0.0.1:3500");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let sessions = args.num("sessions", 5_000)?;
    let readers = args.num("readers", 3)?;
    let seconds = args.num("seconds", 5)?;
    let limits = args.get("label", "off");
    let pace = Duration::from_millis(args.num("pace-ms", 0)?);
    let mut big_token = String::new();
    // Seeded from 127.0.1.x, 100 sessions an address, so an address rate does not refuse it.
    for (batch, first) in (0..sessions).step_by(100).enumerate() {
        let local =
            std::net::Ipv4Addr::new(127, 0, 1 + (batch / 250) as u8, (batch % 250) as u8 + 1);
        let mut seeder = Conn::open_from(&addr, Some(local.into())).await?;
        for i in first..(first + 100).min(sessions) {
            let body = json!({"room": "readers-big", "user": format!("reader-user-{i}"),
                "session": format!("reader-session-{i}"), "name": format!("User {i}"),
                "state": {"section": "intro", "typing": false}});
            let answer = join(&mut seeder, &body).await?;
            big_token = answer["room_token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
    }
    let mut conn = Conn::open(&addr).await?;
    let mut small = json!({"room": "readers-small", "user": "beater", "session": "beater-1",
        "name": "Beater", "interval_ms": 10_000});
    let answer = join(&mut conn, &small).await?;
    small["session_token"] = answer["session_token"].clone();
    let small = small.to_string();

    let quiet = beat_for(&mut conn, &small, seconds, pace).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let lists = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let list_bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let path = format!(
        "/api/presence/list?room_token={}",
        crate::seed::url_encode(&big_token)
    );
    for _ in 0..readers {
        let (stop, lists, refused, list_bytes, path, addr) = (
            stop.clone(),
            lists.clone(),
            refused.clone(),
            list_bytes.clone(),
            path.clone(),
            addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open_from(&addr, Some([127, 0, 0, 2].into())).await?;
            while !stop.load(Ordering::Relaxed) {
                // A hammering client: refused or not, it asks again at once.
                match conn.get(&path).await? {
                    (200, body) => {
                        lists.fetch_add(1, Ordering::Relaxed);
                        list_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    (429, _) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    (status, body) => return Err(format!("list answered {status}: {body}")),
                }
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the readers are going
    let read_started = Instant::now();
    let (lists_before, refused_before) = (
        lists.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let busy = beat_for(&mut conn, &small, seconds, pace).await?;
    let elapsed = read_started.elapsed().as_secs_f64();
    let list_rps = (lists.load(Ordering::Relaxed) - lists_before) as f64 / elapsed;
    let refused_rps = (refused.load(Ordering::Relaxed) - refused_before) as f64 / elapsed;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let (q50, q99) = (percentile(&quiet, 50.0), percentile(&quiet, 99.0));
    let (b50, b99) = (percentile(&busy, 50.0), percentile(&busy, 99.0));
    let list_kib = list_bytes.load(Ordering::Relaxed) / lists.load(Ordering::Relaxed).max(1) / 1024;
    println!(
        "readers limits={limits} sessions={sessions} readers={readers} list_kib={list_kib} \
         list_rps={list_rps:.0} refused_rps={refused_rps:.0} \
         heartbeat_p50_alone_ms={q50:.3} heartbeat_p50_with_readers_ms={b50:.3} \
         heartbeat_p99_alone_ms={q99:.3} heartbeat_p99_with_readers_ms={b99:.3} \
         p50_ratio={:.2} p99_ratio={:.2}",
        b50 / q50.max(1e-9),
        b99 / q99.max(1e-9)
    );
    Ok(())
}

async fn join(conn: &mut Conn, body: &Value) -> Result<Value, String> {
    let (status, answer) = conn
        .post_json("/api/presence/heartbeat", &body.to_string())
        .await?;
    if status != 200 {
        return Err(format!("join failed: {status} {answer}"));
    }
    serde_json::from_str(&answer).map_err(|e| e.to_string())
}

/// No-change heartbeats for `seconds`, one every `pace` at most (back to back if zero); their
/// latencies in ms.
async fn beat_for(
    conn: &mut Conn,
    body: &str,
    seconds: u64,
    pace: Duration,
) -> Result<Vec<f64>, String> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    while Instant::now() < until && latencies.len() < 1_000_000 {
        let started = Instant::now();
        let next = started + pace;
        let (status, answer) = conn.post_json("/api/presence/heartbeat", body).await?;
        if status != 200 {
            return Err(format!("heartbeat failed: {status} {answer}"));
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(latencies)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}
