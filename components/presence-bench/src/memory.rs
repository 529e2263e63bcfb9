//! Memory: resident-set growth per idle session (engine in process, no connections), and per
//! connected subscriber (a server in a child process, RSS read from /proc).

use crate::args::Args;
use futures::StreamExt;
use leptos_presence::ssr::{MemoryPresence, PresenceConfig};
use presence_core::wire::HeartbeatRequest;
use std::time::Duration;

pub fn raise_fd_limit() -> Result<(), String> {
    rlimit::increase_nofile_limit(u64::MAX)
        .map(|_| ())
        .map_err(|e| format!("cannot raise the open-files limit: {e}"))
}

pub fn rss_kib(pid: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".to_string())
}

pub async fn run(args: &Args) -> Result<(), String> {
    let sessions = args.num("sessions", 100_000)? as usize;
    let subscribers = args.num("subscribers", 1_000)? as usize;
    raise_fd_limit()?;

    // Sessions, no connections: rooms of 100, ids the size of UUIDs.
    let presence = MemoryPresence::start(PresenceConfig::default());
    let warm = presence
        .heartbeat(&request(usize::MAX))
        .map_err(|e| e.to_string())?;
    presence
        .disconnect(&warm.session_token)
        .map_err(|e| e.to_string())?;
    let before = rss_kib("self")?;
    for i in 0..sessions {
        presence.heartbeat(&request(i)).map_err(|e| e.to_string())?;
    }
    let after = rss_kib("self")?;
    let per_session = (after.saturating_sub(before) * 1024) as f64 / sessions as f64;
    println!(
        "memory sessions={sessions} rss_before_kib={before} rss_after_kib={after} bytes_per_session={per_session:.0}"
    );
    drop(presence);

    // Subscribers: a server in a child process, so client sockets do not count.
    let port = 3590u16;
    let mut child =
        tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args(["serve", "--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
    let pid = child.id().ok_or("no child pid")?.to_string();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        return Err("bench server did not start".into());
    }
    let token_url = format!("127.0.0.1:{port}");
    let mut conn = crate::http1::Conn::open(&token_url).await?;
    let body = serde_json::json!({"room":"memory","user":"u","session":"s","name":"U"}).to_string();
    let (_, answer) = conn.post_json("/api/presence/heartbeat", &body).await?;
    let answer: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    let room_token = answer["room_token"]
        .as_str()
        .ok_or("no room token")?
        .to_string();
    let url = format!("ws://127.0.0.1:{port}/api/presence/subscribe?room_token={room_token}");
    // One subscriber first, so the per-connection figure excludes one-time setup.
    let mut sockets = vec![
        tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| e.to_string())?
            .0,
    ];
    sockets[0].next().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_before = rss_kib(&pid)?;
    for _ in 0..subscribers {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| e.to_string())?;
        socket.next().await; // the snapshot
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_after = rss_kib(&pid)?;
    let per_subscriber =
        (server_after.saturating_sub(server_before) * 1024) as f64 / subscribers as f64;
    println!(
        "memory subscribers={subscribers} server_rss_before_kib={server_before} server_rss_after_kib={server_after} bytes_per_subscriber={per_subscriber:.0}"
    );
    drop(sockets);
    let _ = child.kill().await;
    Ok(())
}

fn request(i: usize) -> HeartbeatRequest {
    HeartbeatRequest::new(
        format!("room-{:032x}", i / 100),
        format!("{:08x}-0000-4000-8000-{:012x}", i, i),
        format!("{:08x}-1111-4000-8000-{:012x}", i, i),
        format!("User number {i}"),
    )
    .interval_ms(300_000)
}
