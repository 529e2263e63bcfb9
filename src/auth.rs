//! The demo's sign-in mode (`PRESENCE_DEMO_AUTH=1`): a signed cookie names the user, and the
//! presence auth hook stamps that identity on every heartbeat. Deliberately minimal (no
//! passwords): it shows where an app plugs its own sign-in in.

use leptos::prelude::*;

/// Signs this browser in as `name` (sets an HttpOnly cookie). Refused for a name presence would
/// refuse (see `leptos_presence::validate`), one whose user id would be too long, and a request
/// from another site (its `Origin` is not this server).
#[server(prefix = "/api/demo", endpoint = "sign-in")]
pub async fn sign_in(name: String) -> Result<(), ServerFnError> {
    use leptos_presence::{validate, Field};
    let options = expect_context::<leptos_axum::ResponseOptions>();
    let refuse = |status: axum::http::StatusCode, message: String| {
        options.set_status(status);
        Err(ServerFnError::new(message))
    };
    if !ssr::same_origin(&expect_context::<axum::http::request::Parts>()) {
        return refuse(
            axum::http::StatusCode::FORBIDDEN,
            "sign in from this site's own page".into(),
        );
    }
    let name = match validate::normalize_name(&name) {
        Ok(name) => name.into_owned(),
        Err(e) => return refuse(axum::http::StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = validate::id(Field::User, &ssr::user_id(&name)) {
        return refuse(
            axum::http::StatusCode::BAD_REQUEST,
            format!("this name is too long to be a user id ({e})"),
        );
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax",
        ssr::COOKIE,
        ssr::sign(&name)
    );
    options.insert_header(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_str(&cookie)?,
    );
    Ok(())
}

/// Server-only parts: the cookie and the hook.
#[cfg(feature = "ssr")]
pub mod ssr {
    use hmac::{Hmac, Mac};
    use leptos_presence::ssr::{Identity, PresenceAuth};
    use sha2::Sha256;
    use std::sync::OnceLock;

    pub const COOKIE: &str = "presence_demo_user";

    /// True when the demo runs in sign-in mode.
    pub fn enabled() -> bool {
        std::env::var("PRESENCE_DEMO_AUTH").is_ok_and(|v| v == "1" || v == "true")
    }

    fn key() -> &'static Hmac<Sha256> {
        static KEY: OnceLock<Hmac<Sha256>> = OnceLock::new();
        KEY.get_or_init(|| {
            let secret = std::env::var("PRESENCE_SECRET").unwrap_or_else(|_| {
                format!("{:?}{:?}", std::time::SystemTime::now(), std::process::id())
            });
            Hmac::new_from_slice(format!("demo-sign-in:{secret}").as_bytes())
                .expect("HMAC takes any key")
        })
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Option<Vec<u8>> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect()
    }

    /// `{mac}.{name as hex}`: cookie-safe whatever the name holds.
    pub fn sign(name: &str) -> String {
        let value = hex(name.as_bytes());
        let mut mac = key().clone();
        mac.update(value.as_bytes());
        format!("{}.{value}", hex(&mac.finalize().into_bytes()))
    }

    fn verify(cookie: &str) -> Option<String> {
        let (tag, value) = cookie.split_once('.')?;
        let mut mac = key().clone();
        mac.update(value.as_bytes());
        mac.verify_slice(&unhex(tag)?).ok()?;
        String::from_utf8(unhex(value)?).ok()
    }

    /// The user id a signed-in name gets.
    pub fn user_id(name: &str) -> String {
        format!("demo:{name}")
    }

    /// False for a request whose `Origin` names another site than the `Host` it was sent to (a
    /// cross-site form post); requests without `Origin` (same-origin navigations, curl) pass.
    pub fn same_origin(parts: &axum::http::request::Parts) -> bool {
        let Some(origin) = parts.headers.get(axum::http::header::ORIGIN) else {
            return true;
        };
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
    }

    /// Who is calling: the signed-in name from the cookie, if genuine.
    pub fn hook() -> PresenceAuth {
        PresenceAuth::new(|parts| {
            let cookies = parts
                .headers
                .get(axum::http::header::COOKIE)?
                .to_str()
                .ok()?;
            let name = cookies
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == COOKIE)
                .and_then(|(_, v)| verify(v))?;
            Some(Identity::new(user_id(&name)).name(name))
        })
        // Every signed-in demo user may try "appear offline" and invite an agent.
        .invisible(|_, _| true)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn parts(headers: &[(&str, &str)]) -> axum::http::request::Parts {
            let mut request = axum::http::Request::builder().uri("/api/demo/sign-in");
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            request.body(()).unwrap().into_parts().0
        }

        #[test]
        fn only_this_sites_own_pages_may_sign_in() {
            assert!(same_origin(&parts(&[("host", "127.0.0.1:3000")])));
            assert!(same_origin(&parts(&[
                ("host", "127.0.0.1:3000"),
                ("origin", "http://127.0.0.1:3000")
            ])));
            assert!(!same_origin(&parts(&[
                ("host", "127.0.0.1:3000"),
                ("origin", "https://evil.example")
            ])));
            assert!(!same_origin(&parts(&[
                ("host", "127.0.0.1:3000"),
                ("origin", "null")
            ])));
        }

        #[test]
        fn cookies_round_trip_and_forgeries_fail() {
            let cookie = sign("Ada; Lovelace=1");
            assert_eq!(verify(&cookie).as_deref(), Some("Ada; Lovelace=1"));
            let forged = format!("{}.{}", "00".repeat(32), hex(b"Ada"));
            assert_eq!(verify(&forged), None);
            assert_eq!(verify("garbage"), None);
        }
    }
}
