//! Soak: N sessions in rooms of 100 for S seconds on the real clock, with churn: every second
//! some sessions say goodbye, some vanish without a word (they must expire), and as many new
//! ones join. One subscriber per room records every `left`. Checked throughout and at the end:
//! no ghosts (nobody listed past their deadline), no lost leaves (every ended session's `left`
//! arrives, on time), and memory that stays flat.

use crate::args::Args;
use leptos_presence::ssr::{MemoryPresence, PresenceConfig};
use leptos_presence::RoomMessage;
use presence_core::limits::expiry_after;
use presence_core::wire::HeartbeatRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOM_SIZE: usize = 100;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    Alive,
    /// Said goodbye at this instant.
    Left(Instant),
    /// Stopped heartbeating at this instant.
    Vanished(Instant),
}

struct Session {
    request: HeartbeatRequest,
    next_beat: Instant,
    fate: Fate,
}

pub async fn run(args: &Args) -> Result<(), String> {
    let target = args.num("sessions", 10_000)? as usize;
    let seconds = args.num("seconds", 1_800)?;
    let churn_per_s = args.num("churn", (target / 100).max(2) as u64)? as usize;
    let interval_ms = args.num("interval-ms", 5_000)?;
    let deadline = Duration::from_millis(expiry_after(interval_ms));
    let slack = Duration::from_millis(1_500);
    let presence = MemoryPresence::start(PresenceConfig::default());
    let rooms = target.div_ceil(ROOM_SIZE);

    // One subscriber per room: session id -> when its `left` arrived.
    let leaves: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let resyncs = Arc::new(Mutex::new(0u64));
    for r in 0..rooms {
        let token = presence
            .room_token(&format!("soak-{r}"))
            .map_err(|e| e.to_string())?;
        let mut subscription = presence
            .subscribe(&token, None)
            .map_err(|e| e.to_string())?;
        let (leaves, resyncs) = (leaves.clone(), resyncs.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let message = subscription.next().await;
                match message.message() {
                    RoomMessage::Left { session_id, .. } => {
                        leaves
                            .lock()
                            .unwrap()
                            .insert(session_id.clone(), Instant::now());
                    }
                    RoomMessage::Snapshot(_) if !first => *resyncs.lock().unwrap() += 1,
                    _ => {}
                }
                first = false;
            }
        });
    }

    let mut sessions: Vec<Session> = Vec::with_capacity(target * 2);
    let mut next_id = 0usize;
    let mut join = |sessions: &mut Vec<Session>, presence: &MemoryPresence| -> Result<(), String> {
        let id = next_id;
        next_id += 1;
        let mut request = HeartbeatRequest::new(
            format!("soak-{}", id % rooms),
            format!("user-{id}"),
            format!("session-{id}"),
            format!("User {id}"),
        )
        .interval_ms(interval_ms);
        let response = presence.heartbeat(&request).map_err(|e| e.to_string())?;
        request.session_token = Some(response.session_token);
        // Spread heartbeats over the interval, as real tabs are.
        let offset = Duration::from_millis((id as u64 * 7_919) % interval_ms);
        sessions.push(Session {
            request,
            next_beat: Instant::now() + offset,
            fate: Fate::Alive,
        });
        Ok(())
    };
    for _ in 0..target {
        join(&mut sessions, &presence)?;
    }

    // How long a leave may take to arrive: a goodbye at once, a vanishing by its deadline.
    let allowed = |fate: Fate| match fate {
        Fate::Left(_) => slack,
        _ => deadline + slack,
    };
    let (mut late, mut worst) = (0usize, Duration::ZERO);
    let rss = || crate::memory::rss_kib("self").unwrap_or(0);
    let started = Instant::now();
    let mut rss_samples: Vec<(u64, u64)> = vec![(0, rss())];
    let mut ghosts = 0usize;
    let mut checks = 0usize;
    let mut rotate = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_churn = Instant::now();
    let mut last_check = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let now = Instant::now();
        // Heartbeats that are due.
        for s in sessions
            .iter_mut()
            .filter(|s| s.fate == Fate::Alive && s.next_beat <= now)
        {
            presence
                .heartbeat_ack(&s.request)
                .map_err(|e| format!("heartbeat: {e}"))?;
            s.next_beat = now + Duration::from_millis(interval_ms);
        }
        // Churn, once a second: half say goodbye, half vanish; as many join.
        if now.duration_since(last_churn) >= Duration::from_secs(1) {
            last_churn = now;
            let alive: Vec<usize> = sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| s.fate == Fate::Alive)
                .map(|(i, _)| i)
                .collect();
            for k in 0..churn_per_s.min(alive.len()) {
                rotate = (rotate + 7_919) % alive.len();
                let i = alive[rotate];
                if sessions[i].fate != Fate::Alive {
                    continue;
                }
                if k % 2 == 0 {
                    let token = sessions[i]
                        .request
                        .session_token
                        .clone()
                        .unwrap_or_default();
                    presence
                        .disconnect(&token)
                        .map_err(|e| format!("disconnect: {e}"))?;
                    sessions[i].fate = Fate::Left(now);
                } else {
                    sessions[i].fate = Fate::Vanished(now);
                }
                join(&mut sessions, &presence)?;
            }
        }
        // Every 10 s: nobody listed who should be gone.
        if now.duration_since(last_check) >= Duration::from_secs(10) {
            last_check = now;
            checks += 1;
            ghosts += count_ghosts(&presence, &sessions, rooms, deadline + slack);
            rss_samples.push((started.elapsed().as_secs(), rss()));
            // Ended sessions whose leave was seen: judged now (was it on time?), then forgotten,
            // with their leave, so the harness's own memory stays flat too.
            let mut seen = leaves.lock().unwrap();
            sessions.retain(|s| {
                let ended = match s.fate {
                    Fate::Alive => return true,
                    Fate::Left(at) | Fate::Vanished(at) => at,
                };
                let Some(at) = seen.remove(&s.request.session) else {
                    return true; // not heard yet: judged later
                };
                let took = at.saturating_duration_since(ended);
                worst = worst.max(took);
                if took > allowed(s.fate) {
                    late += 1;
                }
                false
            });
        }
    }

    // Stop everyone without a word: all must expire, and every leave must arrive.
    let stopped = Instant::now();
    for s in sessions.iter_mut().filter(|s| s.fate == Fate::Alive) {
        s.fate = Fate::Vanished(stopped);
    }
    tokio::time::sleep(deadline + slack).await;
    let final_ghosts: usize = (0..rooms)
        .map(|r| {
            presence
                .list_room(&format!("soak-{r}"))
                .users
                .iter()
                .filter(|u| u.online)
                .count()
        })
        .sum();
    let leaves = leaves.lock().unwrap();
    let mut lost = 0usize;
    for s in &sessions {
        let ended = match s.fate {
            Fate::Alive => unreachable!("everyone was stopped"),
            Fate::Left(at) | Fate::Vanished(at) => at,
        };
        match leaves.get(&s.request.session) {
            None => lost += 1,
            Some(seen) => {
                let took = seen.saturating_duration_since(ended);
                worst = worst.max(took);
                if took > allowed(s.fate) {
                    late += 1;
                }
            }
        }
    }
    let first = rss_samples
        .get(1)
        .or(rss_samples.first())
        .map_or(0, |s| s.1);
    // Once the rooms' offline lists are full (the cap), memory should stop growing: compare
    // the end with a quarter of the way in (at most 5 minutes in).
    let warm_at = (seconds / 4).min(300);
    let warm = rss_samples
        .iter()
        .find(|s| s.0 >= warm_at)
        .map_or(first, |s| s.1);
    let last = rss_samples.last().map_or(0, |s| s.1);
    let listed: usize = (0..rooms)
        .map(|r| presence.list_room(&format!("soak-{r}")).users.len())
        .sum();
    let peak = rss_samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "soak sessions={target} seconds={seconds} churn_per_s={churn_per_s} sessions_created={next_id} checks={checks} ghosts={ghosts} final_ghosts={final_ghosts} lost_leaves={lost} late_leaves={late} worst_leave_ms={} resyncs={} rss_kib_first={first} rss_kib_warm={warm} rss_kib_last={last} rss_kib_peak={peak} queued_deadlines={} users_listed={listed}",
        worst.as_millis(),
        *resyncs.lock().unwrap(),
        presence.queued_deadlines(),
    );
    if ghosts + final_ghosts + lost + late > 0 {
        return Err("soak found ghosts or lost or late leaves".into());
    }
    Ok(())
}

/// Sessions listed although they ended longer than `grace` ago.
fn count_ghosts(
    presence: &MemoryPresence,
    sessions: &[Session],
    rooms: usize,
    grace: Duration,
) -> usize {
    let now = Instant::now();
    let gone: HashMap<&str, Instant> = sessions
        .iter()
        .filter_map(|s| match s.fate {
            Fate::Left(at) | Fate::Vanished(at) => Some((s.request.session.as_str(), at)),
            Fate::Alive => None,
        })
        .collect();
    let mut ghosts = 0;
    for r in 0..rooms {
        for user in presence.list_room(&format!("soak-{r}")).users {
            for s in user.sessions {
                if gone
                    .get(s.session_id.as_str())
                    .is_some_and(|at| now.duration_since(*at) > grace)
                {
                    ghosts += 1;
                }
            }
        }
    }
    ghosts
}
