//! One call mounts presence into an axum router.

use super::auth::PresenceAuth;
use super::subscribe::subscribe;
use crate::api::{Disconnect, Heartbeat, ListPage, ListRoom, UpdateState};
use crate::{ApiError, API_PREFIX, SUBSCRIBE_PATH};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use presence_core::server::Presence;
use presence_core::PresenceError;

/// Adds presence to an axum [`Router`].
pub trait PresenceRouterExt {
    /// Mounts `presence`: registers the server functions, adds the live subscription route
    /// ([`SUBSCRIBE_PATH`]), and layers the engine (an axum `Extension`) and error statuses over
    /// every route added so far. Call it after `leptos_routes` (or after your own
    /// `handle_server_fns` route) so the server functions are covered.
    fn with_presence(self, presence: Presence) -> Self;

    /// [`PresenceRouterExt::with_presence`] with an auth hook: the app decides from each request
    /// who is calling, and the server stamps that identity (see [`PresenceAuth`]).
    fn with_presence_auth(self, presence: Presence, auth: PresenceAuth) -> Self;
}

impl<S> PresenceRouterExt for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn with_presence(self, presence: Presence) -> Self {
        register_server_fns();
        self.route(SUBSCRIBE_PATH, get(subscribe))
            .layer(middleware::from_fn(decode_error_status))
            .layer(Extension(super::sockets::SocketCounter::default()))
            .layer(Extension(super::websocket::Streams::default()))
            .layer(Extension(presence))
    }

    fn with_presence_auth(self, presence: Presence, auth: PresenceAuth) -> Self {
        self.with_presence(presence).layer(Extension(auth))
    }
}

/// Registers the presence server functions with `server_fn`, in case the linker dropped their
/// automatic registration. Idempotent.
pub fn register_server_fns() {
    use server_fn::axum::register_explicit;
    register_explicit::<Heartbeat>();
    register_explicit::<UpdateState>();
    register_explicit::<Disconnect>();
    register_explicit::<ListRoom>();
    register_explicit::<ListPage>();
}

/// The engine mounted on this request (inside a server function or during SSR).
pub async fn engine() -> Result<Presence, ApiError> {
    if let Some(presence) = leptos::prelude::use_context::<Presence>() {
        return Ok(presence);
    }
    // Borrow the request parts rather than extract (which clones all of them): this runs on
    // every heartbeat.
    leptos::prelude::with_context::<axum::http::request::Parts, _>(|parts| {
        parts.extensions.get::<Presence>().cloned()
    })
    .flatten()
    .ok_or_else(|| {
        super::fail(PresenceError::Unavailable {
            message: "presence is not mounted on this server: call \
                      `Router::with_presence(presence)` after `leptos_routes`"
                .into(),
        })
    })
}

/// Largest request body a presence endpoint reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Guards the presence endpoints and shapes their errors: bodies over [`MAX_BODY_BYTES`] are
/// refused (413) before anything reads them; every error leaves with its own status (a decoder
/// rejection comes out of `server_fn` as a 500, but it is the client's fault: 400), a human
/// `message`, and `Retry-After` when it is a 429.
async fn decode_error_status(request: Request, next: Next) -> Response {
    let ours = request.uri().path().starts_with(API_PREFIX);
    if !ours {
        return next.run(request).await;
    }
    // Pages of other origins only if listed (see `cors`): refused before anything else, and a
    // listed one's preflight answered here.
    let presence = request.extensions().get::<Presence>().cloned();
    let allowed = presence.as_ref().map_or(&[][..], |p| p.allowed_origins());
    match super::cors::judge(request.headers(), allowed) {
        super::cors::Origin::Own => guard(request, next).await,
        super::cors::Origin::Refused(origin) => error_response(PresenceError::Forbidden {
            reason: format!(
                "pages from {origin} may not call presence here (list it in \
                 PRESENCE_ALLOWED_ORIGINS to allow it)"
            ),
        }),
        super::cors::Origin::Allowed(origin) => {
            if request.method() == axum::http::Method::OPTIONS {
                return super::cors::preflight(origin, method_of(request.uri().path()));
            }
            let mut response = guard(request, next).await;
            super::cors::decorate(&mut response, origin);
            response
        }
    }
}

/// [`decode_error_status`] for a request whose origin may call.
async fn guard(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| http_body::Body::size_hint(request.body()).exact());
    let path = request.uri().path();
    if let Some(allowed) = method_of(path) {
        let head_of_get =
            allowed == axum::http::Method::GET && request.method() == axum::http::Method::HEAD;
        if request.method() != allowed && !head_of_get {
            let mut response = error_response(PresenceError::MethodNotAllowed {
                allowed: allowed.to_string(),
            });
            response.headers_mut().insert(
                axum::http::header::ALLOW,
                HeaderValue::from_str(allowed.as_str()).expect("a method is a header value"),
            );
            return response;
        }
    }
    // JSON endpoints take JSON only: a cross-site page cannot send `application/json` without a
    // CORS preflight, so a "simple" text/plain or form POST carrying the user's cookies is
    // refused here (CSRF). Disconnect and going stay form/text for sendBeacon; they need the token
    // anyway.
    let wants_json = path.ends_with("/heartbeat") || path.ends_with("/update");
    let is_json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type);
    if wants_json && !is_json {
        return error_response(PresenceError::BadRequest {
            message: "content-type must be application/json".into(),
        });
    }
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return error_response(PresenceError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    // A body without a declared length is cut off at the limit (its decoder then fails: 400).
    // A body that trickles in (a slow-loris client) is cut off after BODY_TIMEOUT.
    let request = request.map(|body| {
        Body::new(super::body_timeout::TimeoutBody::new(
            http_body_util::Limited::new(body, MAX_BODY_BYTES),
            BODY_TIMEOUT,
        ))
    });
    let response = next.run(request).await;
    if !response.headers().contains_key("serverfnerror") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let Ok(mut error) = serde_json::from_slice::<PresenceError>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let PresenceError::BadRequest { message } = &error {
        if message.contains("length limit exceeded") {
            // A streamed body ran past the limit while the decoder read it.
            error = PresenceError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            };
        } else if message.contains(super::body_timeout::TIMED_OUT) {
            error = PresenceError::RequestTimeout {
                limit_ms: BODY_TIMEOUT.as_millis() as u64,
            };
        }
    }
    if let Ok(status) = StatusCode::from_u16(error.status()) {
        parts.status = status;
    }
    parts
        .headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    parts.headers.remove("content-length");
    if let Some(value) = retry_after(&error) {
        parts.headers.insert(axum::http::header::RETRY_AFTER, value);
    }
    Response::from_parts(parts, Body::from(super::error_body(&error)))
}

/// How long a presence endpoint waits for a request's body once its headers arrived.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The HTTP method each presence endpoint takes (`None`: not one of ours).
fn method_of(path: &str) -> Option<axum::http::Method> {
    use axum::http::Method;
    match path.strip_prefix(API_PREFIX)? {
        "/heartbeat" | "/update" | "/disconnect" | "/going" | "/list_page" => Some(Method::POST),
        "/list" | "/subscribe" => Some(Method::GET),
        _ => None,
    }
}

/// `application/json`, in any letter case, with or without parameters (`; charset=utf-8`); not
/// `application/jsonx` nor `text/json`.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// A complete error response (outside a server function).
pub(crate) fn error_response(error: PresenceError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = Response::new(Body::from(super::error_body(&error)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(value) = retry_after(&error) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// Whole seconds, rounded up, as `Retry-After` wants them.
fn retry_after(error: &PresenceError) -> Option<HeaderValue> {
    match error {
        PresenceError::TooManyRequests { retry_after_ms } => {
            HeaderValue::from_str(&retry_after_ms.div_ceil(1000).max(1).to_string()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_recognised_by_its_essence_in_any_case() {
        for yes in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " APPLICATION/json ;charset=UTF-8",
        ] {
            assert!(is_json_media_type(yes), "{yes}");
        }
        for no in [
            "application/jsonx",
            "application/json-patch+json",
            "text/json",
            "text/plain",
            "",
        ] {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    #[test]
    fn each_endpoint_has_its_method() {
        use axum::http::Method;
        assert_eq!(method_of("/api/presence/heartbeat"), Some(Method::POST));
        assert_eq!(method_of("/api/presence/going"), Some(Method::POST));
        assert_eq!(method_of("/api/presence/list"), Some(Method::GET));
        assert_eq!(method_of("/api/presence/subscribe"), Some(Method::GET));
        assert_eq!(method_of("/api/presence/other"), None);
        assert_eq!(method_of("/elsewhere/heartbeat"), None);
    }
}
