//! The auth hook: the app decides from each request who is calling.

use crate::ApiError;
use axum::http::request::Parts;
use presence_core::PresenceError;
use std::sync::Arc;

/// Who is calling, as the app decides it: [`Identity::new`], and [`Identity::name`] to stamp
/// a display name too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user id the server stamps on this caller's sessions (whatever the client claims).
    pub user_id: String,
    /// The display name to stamp, or `None` (the default) to let the client choose its name.
    pub name: Option<String>,
}

impl Identity {
    /// The caller `user_id`, naming itself.
    pub fn new(user_id: impl Into<String>) -> Self {
        Identity {
            user_id: user_id.into(),
            name: None,
        }
    }

    /// Stamps `name` as the caller's display name, whatever the client reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Decides the caller from the request (cookie, header, the app's own session).
///
/// With a hook mounted, every heartbeat is stamped with the caller's identity, so nobody can
/// appear as someone else; updates, disconnects and session subscriptions are refused (403) for
/// sessions of another user; and a caller the hook does not know (`None`) is refused (401).
/// Listing and watching a room still need only its room token, which the app may hand to
/// observers (see `Presence::room_token`).
///
/// ```no_run
/// use axum::Router;
/// use leptos_presence::ssr::{Identity, Presence, PresenceAuth, PresenceConfig, PresenceRouterExt};
///
/// /// Your own sign-in: here, a header a trusted proxy sets.
/// fn signed_in_user(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
///     let user = headers.get("x-signed-in-user")?.to_str().ok()?;
///     Some((format!("id:{user}"), user.to_string()))
/// }
///
/// # async fn mount() {
/// let auth = PresenceAuth::new(|parts| {
///     let (id, display_name) = signed_in_user(&parts.headers)?; // None: not signed in
///     Some(Identity::new(id).name(display_name))
/// });
/// let app: Router = Router::new()
///     // .leptos_routes(…) first, as with `with_presence`
///     .with_presence_auth(Presence::start(PresenceConfig::default()), auth);
/// # }
/// ```
#[derive(Clone)]
pub struct PresenceAuth {
    identify: Arc<IdentifyFn>,
    rooms: Option<Arc<RoomRuleFn>>,
    agents: Option<Arc<RoomRuleFn>>,
    invisible: Option<Arc<RoomRuleFn>>,
}

/// The app's function from a request to its caller.
type IdentifyFn = dyn Fn(&Parts) -> Option<Identity> + Send + Sync;
/// The app's rule for which rooms a caller may be in and see.
type RoomRuleFn = dyn Fn(&Identity, &str) -> bool + Send + Sync;

impl PresenceAuth {
    /// A hook from a function of the request's parts.
    pub fn new(hook: impl Fn(&Parts) -> Option<Identity> + Send + Sync + 'static) -> Self {
        PresenceAuth {
            identify: Arc::new(hook),
            rooms: None,
            agents: None,
            invisible: None,
        }
    }

    /// Limits which rooms each caller may join, and whose list the server renders into a page
    /// for them. Default: every signed-in caller, every room. A refused heartbeat is
    /// `403 forbidden`; a refused page renders without the list.
    ///
    /// ```
    /// # use leptos_presence::ssr::{Identity, PresenceAuth};
    /// let auth = PresenceAuth::new(|_parts| None)
    ///     .rooms(|caller: &Identity, room: &str| room.starts_with(&format!("{}/", caller.user_id)));
    /// ```
    pub fn rooms(mut self, rule: impl Fn(&Identity, &str) -> bool + Send + Sync + 'static) -> Self {
        self.rooms = Some(Arc::new(rule));
        self
    }

    /// Which callers may be present as agents (heartbeats with `"kind": "agent"`: a separate
    /// process, a bot), in which rooms. Default: none; a refused heartbeat is `403 forbidden`.
    /// Agents are not held to the per-user caps, so grant this to your own services only.
    /// (Without a hook, in open mode, anyone may: as anyone may claim any user id.)
    ///
    /// ```
    /// # use leptos_presence::ssr::{Identity, PresenceAuth};
    /// let auth = PresenceAuth::new(|_parts| None)
    ///     .agents(|caller: &Identity, _room: &str| caller.user_id.starts_with("bot:"));
    /// ```
    pub fn agents(
        mut self,
        rule: impl Fn(&Identity, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.agents = Some(Arc::new(rule));
        self
    }

    /// Which callers may be invisible ("appear offline": present, watching the room, listed to
    /// nobody), in which rooms. Default: none; a refused heartbeat is `403 forbidden`.
    ///
    /// ```
    /// # use leptos_presence::ssr::{Identity, PresenceAuth};
    /// let auth = PresenceAuth::new(|_parts| None)
    ///     .invisible(|caller: &Identity, _room: &str| caller.user_id.starts_with("staff:"));
    /// ```
    pub fn invisible(
        mut self,
        rule: impl Fn(&Identity, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.invisible = Some(Arc::new(rule));
        self
    }

    /// True if `caller` may be invisible in `room`.
    pub fn may_be_invisible(&self, caller: &Identity, room: &str) -> bool {
        self.invisible
            .as_ref()
            .is_some_and(|rule| rule(caller, room))
    }

    /// True if `caller` may be present as an agent in `room`.
    pub fn may_be_agent(&self, caller: &Identity, room: &str) -> bool {
        self.agents.as_ref().is_some_and(|rule| rule(caller, room))
    }

    /// Runs the hook.
    pub fn identify(&self, parts: &Parts) -> Option<Identity> {
        (self.identify)(parts)
    }

    /// True if `caller` may join and see `room`.
    pub fn may_enter(&self, caller: &Identity, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rule| rule(caller, room))
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

/// Whether the request in `parts` may read `room` without a room token (the list the server
/// renders into a page): the rule `list` follows. Open mode (no hook): every room is public, as
/// anyone may join any room and list it. With a hook: only a caller it knows, in a room its rule
/// allows.
pub(crate) fn may_read_room(parts: &Parts, room: &str) -> bool {
    match parts.extensions.get::<PresenceAuth>() {
        None => true,
        Some(auth) => auth
            .identify(parts)
            .is_some_and(|caller| auth.may_enter(&caller, room)),
    }
}
