//! Server-side presence: an AI agent, a bot or an import job present in a room without a browser.
//!
//! An agent is a session of kind [`PresenceKind::Agent`]: it shows in every list with that kind
//! (`<FacePile/>` marks it), carries state like any session, is not counted against the per-user
//! caps (only the room's), and lives `ttl_ms` after each heartbeat. [`Presence::join_agent`]
//! returns an [`Agent`] that heartbeats for itself until [`Agent::leave`] or until it is dropped;
//! a separate process can do the same over HTTP (see `leptos_presence::api`).

use super::presence::Presence;
use crate::error::PresenceError;
use crate::server::token::SessionToken;
use crate::wire::{HeartbeatRequest, HeartbeatResponse, PresenceKind};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What [`Presence::join_agent`] needs: the room, the agent's user id and name, and optionally
/// its TTL, state and session id.
///
/// ```
/// use presence_core::server::AgentOptions;
/// let options = AgentOptions::new("design-review", "bot:summary", "Summarizer")
///     .ttl_ms(60_000)
///     .state(serde_json::json!({"doing": "reading the thread"}));
/// assert_eq!(options.ttl_ms, 60_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentOptions {
    /// The room to be present in.
    pub room: String,
    /// The agent's user id (its own, or that of the user it acts for).
    pub user_id: String,
    /// The name shown.
    pub name: String,
    /// How long the agent stays present after its last heartbeat, in ms (clamped to 1 s … 1 h;
    /// default 30 s). An [`Agent`] heartbeats every third of it, so a crashed process shows as
    /// gone within one TTL.
    pub ttl_ms: u64,
    /// Its state, if any (as a session's: at most 4 KiB of JSON).
    pub state: Option<Value>,
    /// Its session id; default `agent-` and 16 random hex digits.
    pub session_id: Option<String>,
}

impl AgentOptions {
    /// Agent `user_id`, shown as `name`, in `room`: 30 s TTL, no state.
    pub fn new(
        room: impl Into<String>,
        user_id: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        AgentOptions {
            room: room.into(),
            user_id: user_id.into(),
            name: name.into(),
            ttl_ms: 30_000,
            state: None,
            session_id: None,
        }
    }

    /// Sets [`AgentOptions::ttl_ms`].
    pub fn ttl_ms(mut self, ms: u64) -> Self {
        self.ttl_ms = ms;
        self
    }

    /// Sets [`AgentOptions::state`].
    pub fn state(mut self, state: Value) -> Self {
        self.state = Some(state);
        self
    }

    /// Sets [`AgentOptions::session_id`].
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    fn request(&self) -> HeartbeatRequest {
        let session = self.session_id.clone().unwrap_or_else(|| {
            let random = SessionToken::generate().to_hex();
            format!("agent-{}", &random[..16])
        });
        let mut request =
            HeartbeatRequest::agent(&self.room, &self.user_id, session, &self.name, self.ttl_ms);
        request.state = self.state.clone();
        request
    }
}

/// An agent present in a room: it heartbeats every third of its TTL from a task of its own,
/// until [`Agent::leave`], or until it is dropped (then it leaves too, if a tokio runtime is
/// still there to send that; otherwise it expires after its TTL). If its session is lost (the
/// store restarted empty, or the app removed it with `remove_room_user`), its next heartbeat
/// makes it again, with its latest state: to end an agent, leave or drop it.
#[derive(Debug)]
pub struct Agent {
    presence: Presence,
    joined: HeartbeatResponse,
    session_id: String,
    /// Its latest state, for a session made again.
    state: Arc<Mutex<Option<Value>>>,
    keep_alive: Option<tokio::task::JoinHandle<()>>,
}

impl Presence {
    /// Makes server-side code present in a room (see [`AgentOptions`]): it shows with kind
    /// `agent` until [`Agent::leave`] or until the [`Agent`] is dropped. Typed errors as a
    /// heartbeat's (an invalid id, name or state; a full room); nothing changes then.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use presence_core::server::{AgentOptions, Presence, PresenceConfig};
    /// use presence_core::wire::PresenceKind;
    ///
    /// let presence = Presence::start(PresenceConfig::default());
    /// let agent = presence
    ///     .join_agent(AgentOptions::new("lobby", "bot:summary", "Summarizer"))
    ///     .await
    ///     .unwrap();
    /// let room = presence.list_room("lobby").await.unwrap();
    /// assert_eq!(room.users[0].kind, PresenceKind::Agent);
    /// agent.set_state(serde_json::json!({"doing": "summarizing"})).await.unwrap();
    /// agent.leave().await.unwrap();
    /// # });
    /// ```
    pub async fn join_agent(&self, options: AgentOptions) -> Result<Agent, PresenceError> {
        let request = options.request();
        let joined = self.heartbeat(&request).await?;
        let session_id = request.session.clone();
        let state = Arc::new(Mutex::new(request.state.clone()));
        let mut again = request;
        again.state = None; // keep what it has (set_state changes it)
        again.session_token = Some(joined.session_token.clone());
        let every = Duration::from_millis((crate::limits::lifetime_ms(0, again.ttl_ms) / 3).max(1));
        let presence = self.clone();
        let latest = state.clone();
        let keep_alive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // A failure (the store unreachable for a moment) is retried at the next tick;
                // a session that ended meanwhile is joined again with its token by the next
                // heartbeat, and given its latest state.
                if let Ok(beat) = presence.heartbeat(&again).await {
                    let state = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let (true, Some(state)) = (beat.joined, state) {
                        let _ = presence.update_state(&beat.session_token, state).await;
                    }
                }
            }
        });
        Ok(Agent {
            presence: self.clone(),
            joined,
            session_id,
            state,
            keep_alive: Some(keep_alive),
        })
    }
}

impl Agent {
    /// The agent's session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The agent's session token (for [`Presence::update_state`] and friends).
    pub fn session_token(&self) -> &str {
        &self.joined.session_token
    }

    /// The token to list and watch the agent's room.
    pub fn room_token(&self) -> &str {
        &self.joined.room_token
    }

    /// Always [`PresenceKind::Agent`].
    pub fn kind(&self) -> PresenceKind {
        PresenceKind::Agent
    }

    /// Replaces the agent's state (`null` clears it): one `updated` if it changed.
    pub async fn set_state(&self, state: Value) -> Result<(), PresenceError> {
        self.presence
            .update_state(&self.joined.session_token, state.clone())
            .await?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(state).filter(|s| !s.is_null());
        Ok(())
    }

    /// Ends the agent's presence now (one `left`, reason `disconnected`).
    pub async fn leave(mut self) -> Result<(), PresenceError> {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        self.presence.disconnect(&self.joined.session_token).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let Some(task) = self.keep_alive.take() else {
            return; // left already
        };
        task.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let presence = self.presence.clone();
            let token = self.joined.session_token.clone();
            runtime.spawn(async move {
                let _ = presence.disconnect(&token).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::PresenceConfig;

    #[tokio::test]
    async fn an_agent_outlives_its_ttl_while_its_handle_lives() {
        let presence = Presence::start(PresenceConfig::default());
        let agent = presence
            .join_agent(AgentOptions::new("r", "bot", "Bot").ttl_ms(1_000))
            .await
            .unwrap();
        // Real time: 2.5 TTLs. Without the keep-alive it would have expired after one.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let room = presence.list_room("r").await.unwrap();
        assert!(room.users[0].online, "{room:?}");
        agent.leave().await.unwrap();
        assert!(!presence.list_room("r").await.unwrap().users[0].online);
    }

    #[tokio::test]
    async fn a_lost_agent_session_comes_back_with_its_latest_state() {
        let presence = Presence::start(PresenceConfig::default());
        let agent = presence
            .join_agent(AgentOptions::new("r", "bot", "Bot").ttl_ms(1_000))
            .await
            .unwrap();
        agent
            .set_state(serde_json::json!({"step": 2}))
            .await
            .unwrap();
        assert!(presence.remove_room_user("r", "bot").await.unwrap());
        assert!(presence.list_room("r").await.unwrap().users.is_empty());
        // Its next heartbeat (a third of its TTL later) makes it again, with that state.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let room = presence.list_room("r").await.unwrap();
        assert_eq!(
            room.users[0].sessions[0].state,
            Some(serde_json::json!({"step": 2})),
            "{room:?}"
        );
        agent.leave().await.unwrap();
    }
}
