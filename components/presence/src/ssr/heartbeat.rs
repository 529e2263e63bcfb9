//! A heartbeat as the server takes it, whichever way it came: `POST /api/presence/heartbeat`
//! (the server function [`crate::api::heartbeat`]) or the first message of a socket that joins
//! as it subscribes (`subscribe?join=1`). The caller's address rate, who the session is for and
//! what the caller may do are decided here, once for both.

use super::auth::{caller_of, PresenceAuth};
use axum::http::request::Parts;
use presence_core::server::Presence;
use presence_core::wire::{HeartbeatRequest, PresenceKind};
use presence_core::PresenceError;
use serde::Deserialize;
use serde_json::Value;

/// A heartbeat's fields, as the client sends them (the JSON body of `POST /heartbeat`).
#[derive(Debug, Deserialize)]
pub(crate) struct HeartbeatBody {
    pub room: String,
    pub user: String,
    pub session: String,
    pub name: String,
    pub interval_ms: Option<u64>,
    pub state: Option<Value>,
    pub away: Option<bool>,
    pub idle_for_ms: Option<u64>,
    pub session_token: Option<String>,
    pub kind: Option<PresenceKind>,
    pub ttl_ms: Option<u64>,
    pub invisible: Option<bool>,
}

impl HeartbeatBody {
    /// The engine's request for this heartbeat from the request in `parts` (`None`: called
    /// from inside the server, with no request): counted against its address's rate, and with
    /// an auth hook, made for the caller's identity whatever the body claims, and refused
    /// (`forbidden`) where the hook's rules keep the caller out.
    pub(crate) fn admit(
        self,
        presence: &Presence,
        parts: Option<&Parts>,
    ) -> Result<HeartbeatRequest, PresenceError> {
        if let Some(address) = parts.and_then(|parts| super::address_of(presence, parts)) {
            presence.check_address(address)?;
        }
        let caller = parts.map(caller_of).transpose()?.flatten();
        let auth = parts.and_then(|parts| parts.extensions.get::<PresenceAuth>());
        let invisible = self.invisible.unwrap_or(false);
        let refuse = |reason: String| Err(PresenceError::Forbidden { reason });
        let (user, name) = match (caller, auth) {
            (Some(identity), Some(auth)) => {
                let room = &self.room;
                if !auth.may_enter(&identity, room) {
                    return refuse(format!("you may not enter room {room}"));
                }
                if self.kind == Some(PresenceKind::Agent) && !auth.may_be_agent(&identity, room) {
                    return refuse(format!("you may not be present as an agent in room {room}"));
                }
                if invisible && !auth.may_be_invisible(&identity, room) {
                    return refuse(format!("you may not be invisible in room {room}"));
                }
                (identity.user_id, identity.name.unwrap_or(self.name))
            }
            _ if invisible && !presence.allows_invisible() => {
                return refuse(
                    "this server does not let clients be invisible (PRESENCE_ALLOW_INVISIBLE)"
                        .into(),
                );
            }
            _ => (self.user, self.name),
        };
        let mut request = HeartbeatRequest::new(self.room, user, self.session, name)
            .away(self.away.unwrap_or(false));
        request.interval_ms = self.interval_ms;
        request.state = self.state;
        request.idle_for_ms = self.idle_for_ms;
        request.session_token = self.session_token;
        request.kind = self.kind.unwrap_or_default();
        request.invisible = invisible;
        request.ttl_ms = self.ttl_ms;
        Ok(request)
    }
}
