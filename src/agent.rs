//! "Invite an agent": server-side code present in the room for a minute, as an AI assistant or
//! a bot would be. It shows in everyone's pile as an agent, moves between sections like a person
//! and types, then leaves. It uses `Presence::join_agent`, as any app would.

use leptos::prelude::*;

/// How long an invited agent stays, in ms, unless `PRESENCE_DEMO_AGENT_MS` says otherwise.
#[cfg(feature = "ssr")]
const AGENT_STAYS_MS: u64 = 60_000;

/// Starts an agent ("Note-taker") in `room` for [`AGENT_STAYS_MS`] (or
/// `PRESENCE_DEMO_AGENT_MS`).
#[server(prefix = "/api/demo", endpoint = "invite-agent")]
pub async fn invite_agent(room: String) -> Result<(), ServerFnError> {
    use crate::room::DemoState;
    use leptos_presence::ssr::{engine, AgentOptions};
    use std::time::Duration;

    let presence = engine()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let state = |section: &str, typing: bool| {
        serde_json::to_value(DemoState {
            section: section.into(),
            typing,
        })
        .expect("the demo state serializes")
    };
    let options = AgentOptions::new(room, "agent:note-taker", "Note-taker")
        .ttl_ms(10_000)
        .state(state("intro", false));
    let agent = presence
        .join_agent(options)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    tokio::spawn(async move {
        let steps = [
            ("agenda", false),
            ("notes", true),
            ("notes", false),
            ("intro", false),
        ];
        let stays = std::env::var("PRESENCE_DEMO_AGENT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(AGENT_STAYS_MS);
        let pause = Duration::from_millis(stays / (steps.len() as u64 + 1));
        for (section, typing) in steps {
            tokio::time::sleep(pause).await;
            let _ = agent.set_state(state(section, typing)).await;
        }
        tokio::time::sleep(pause).await;
        let _ = agent.leave().await;
    });
    Ok(())
}
