//! Which pages may call presence: the server's own, and the origins `allowed_origins` lists.
//!
//! A browser names the page's origin in `Origin` on every cross-origin request, on same-origin
//! POSTs and on every WebSocket upgrade. A request from another origin is refused (`403
//! forbidden`) unless that origin is listed; a listed one gets CORS headers (with credentials,
//! so an auth hook's cookies work) and its preflights are answered. Requests without `Origin`
//! (curl, other servers, same-origin GETs) pass: what guards them is the tokens.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

/// What a request's `Origin` means here.
#[derive(Debug, PartialEq)]
pub(crate) enum Origin {
    /// No `Origin`, or the server's own.
    Own,
    /// A listed origin: answer with CORS headers naming it.
    Allowed(HeaderValue),
    /// Another origin, not listed.
    Refused(String),
}

/// Judges `headers`' `Origin` against the server's own (`Host`) and `allowed`.
pub(crate) fn judge(headers: &HeaderMap, allowed: &[String]) -> Origin {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Origin::Own;
    };
    let origin = value.to_str().unwrap_or("").trim_end_matches('/');
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    if let (Some(o), Some(h)) = (origin_host, host) {
        if o.eq_ignore_ascii_case(h) {
            return Origin::Own;
        }
    }
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return Origin::Allowed(value.clone());
    }
    Origin::Refused(origin.to_string())
}

/// The answer to a preflight from an allowed origin, for an endpoint taking `method`.
pub(crate) fn preflight(origin: HeaderValue, method: Option<Method>) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let methods = method.map_or_else(|| "GET, POST".to_string(), |m| m.to_string());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_str(&methods).unwrap_or(HeaderValue::from_static("GET, POST")),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, accept"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    decorate(&mut response, origin);
    response
}

/// Adds the CORS headers a listed origin's page needs to read `response`.
pub(crate) fn decorate(response: &mut Response, origin: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn own_listed_and_other_origins() {
        let listed = ["https://app.example.com".to_string()];
        assert_eq!(
            judge(&headers(&[("host", "p.example.com")]), &listed),
            Origin::Own
        );
        assert_eq!(
            judge(
                &headers(&[
                    ("host", "p.example.com"),
                    ("origin", "https://P.example.com")
                ]),
                &listed
            ),
            Origin::Own
        );
        assert!(matches!(
            judge(
                &headers(&[
                    ("host", "p.example.com"),
                    ("origin", "https://app.example.com")
                ]),
                &listed
            ),
            Origin::Allowed(_)
        ));
        for other in [
            "https://evil.example",
            "null",
            "https://app.example.com.evil.example",
        ] {
            assert_eq!(
                judge(
                    &headers(&[("host", "p.example.com"), ("origin", other)]),
                    &listed
                ),
                Origin::Refused(other.to_string()),
                "{other}"
            );
        }
    }
}
