//! The demo's sign-in mode (`PRESENCE_DEMO_AUTH=1`): a signed cookie names the user, and the
//! presence auth hook stamps that identity on every heartbeat. Deliberately minimal (no
//! passwords): it shows where an app plugs its own sign-in in.

use leptos::prelude::*;

/// Signs this browser in as `name` (sets an HttpOnly cookie).
#[server(prefix = "/api/demo", endpoint = "sign-in")]
pub async fn sign_in(name: String) -> Result<(), ServerFnError> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ServerFnError::new(
            "a name is 1 to 64 characters, no control characters",
        ));
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax",
        ssr::COOKIE,
        ssr::sign(&name)
    );
    let options = expect_context::<leptos_axum::ResponseOptions>();
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
            Some(Identity {
                user_id: format!("demo:{name}"),
                name: Some(name),
            })
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

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
