//! The first message a server sends on a socket that joins (`subscribe?join=1`): the answer to
//! the heartbeat the client sent on it, or why it was refused. Both ends use this one type.

use presence_core::wire::HeartbeatResponse;
use presence_core::PresenceError;
use serde::{Deserialize, Serialize};

/// The server's answer to a socket's heartbeat, as JSON: `{"type":"heartbeat","answer":{…}}` or
/// `{"type":"error","error":{"code":…,"message":…}}` (the error as `POST /heartbeat` gives it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Only the browser builds read it, and only the server builds write it.
#[cfg_attr(
    not(any(feature = "ssr", feature = "hydrate", feature = "csr")),
    allow(dead_code)
)]
pub(crate) enum JoinAnswer {
    /// The heartbeat was taken: the session's tokens. The subscription follows.
    Heartbeat {
        /// As `POST /heartbeat` answers it.
        answer: HeartbeatResponse,
    },
    /// The heartbeat was refused; the socket closes.
    Error {
        /// As `POST /heartbeat` would have said it.
        error: PresenceError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_and_a_refusal_read_back_as_written_and_a_refusal_keeps_its_message() {
        let answer = HeartbeatResponse::new("ada", "st", "rt", true, 10_000, 42);
        let text = serde_json::to_string(&JoinAnswer::Heartbeat {
            answer: answer.clone(),
        })
        .unwrap();
        assert!(
            text.starts_with(r#"{"type":"heartbeat","answer":{"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<JoinAnswer>(&text).unwrap(),
            JoinAnswer::Heartbeat { answer }
        );
        // What the server writes for a refusal: the error body of `POST /heartbeat`, with its
        // human message, which the client does not need to read it.
        let text = r#"{"type":"error","error":{"code":"room_full","room":"r","limit":2,"message":"room r is full"}}"#;
        match serde_json::from_str::<JoinAnswer>(text).unwrap() {
            JoinAnswer::Error { error } => assert_eq!(error.code(), "room_full"),
            other => panic!("{other:?}"),
        }
    }
}
