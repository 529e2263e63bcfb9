//! The auth hook: the app decides from each request who is calling.

use crate::ApiError;
use axum::http::request::Parts;
use presence_core::PresenceError;
use std::sync::Arc;

/// Who is calling, as the app decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id the server stamps on this caller's sessions (whatever the client claims).
    pub user_id: String,
    /// The display name to stamp, or `None` to let the client choose its name.
    pub name: Option<String>,
}

/// Decides the caller from the request (cookie, header, the app's own session).
///
/// With a hook mounted, every heartbeat is stamped with the caller's identity, so nobody can
/// appear as someone else; updates, disconnects and session subscriptions are refused (403) for
/// sessions of another user; and a caller the hook does not know (`None`) is refused (401).
/// Listing and watching a room still need only its room token, which the app may hand to
/// observers (see `Presence::room_token`).
///
/// ```ignore
/// let auth = PresenceAuth::new(|parts| {
///     let user = my_app::session_user(&parts.headers)?;      // your own sign-in
///     Some(Identity { user_id: user.id, name: Some(user.display_name) })
/// });
/// let app = Router::new()
///     .leptos_routes(&options, routes, app_shell)
///     .with_presence_auth(Presence::start(PresenceConfig::default()), auth);
/// ```
#[derive(Clone)]
pub struct PresenceAuth(Arc<IdentifyFn>);

/// The app's function from a request to its caller.
type IdentifyFn = dyn Fn(&Parts) -> Option<Identity> + Send + Sync;

impl PresenceAuth {
    /// A hook from a function of the request's parts.
    pub fn new(hook: impl Fn(&Parts) -> Option<Identity> + Send + Sync + 'static) -> Self {
        PresenceAuth(Arc::new(hook))
    }

    /// Runs the hook.
    pub fn identify(&self, parts: &Parts) -> Option<Identity> {
        (self.0)(parts)
    }
}

impl std::fmt::Debug for PresenceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresenceAuth(..)")
    }
}

/// What the hook says about a request: `Ok(None)` when no hook is mounted (open mode),
/// `Ok(Some(identity))` for a known caller, `Err(Unauthenticated)` for an unknown one.
pub(crate) fn caller_of(parts: &Parts) -> Result<Option<Identity>, PresenceError> {
    match parts.extensions.get::<PresenceAuth>() {
        None => Ok(None),
        Some(auth) => auth
            .identify(parts)
            .map(Some)
            .ok_or(PresenceError::Unauthenticated),
    }
}

/// The caller of the current server function.
pub(crate) fn caller() -> Result<Option<Identity>, ApiError> {
    leptos::prelude::with_context::<Parts, _>(caller_of)
        .unwrap_or(Ok(None))
        .map_err(super::fail)
}
