//! What the engine's tests share.

use crate::wire::HeartbeatRequest;

/// The tests' starting time (ms since the Unix epoch).
pub(crate) const T0: u64 = 1_700_000_000_000;

/// A first heartbeat: no token, a 20.5 s interval (so a 25 s timeout, which the tests'
/// arithmetic assumes: 20.5 s + the 4.5 s slack), name "Name {user}".
pub(crate) fn req(room: &str, user: &str, session: &str) -> HeartbeatRequest {
    HeartbeatRequest::new(room, user, session, format!("Name {user}")).interval_ms(20_500)
}
