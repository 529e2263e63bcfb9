//! The one error type of the presence API.

use serde::{Deserialize, Serialize};

/// Which field of a request a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Field {
    /// The room id.
    Room,
    /// The user id.
    User,
    /// The session id.
    Session,
    /// The display name.
    Name,
    /// The app-defined state.
    State,
    /// A session or room token.
    Token,
    /// A heartbeat's `ttl_ms`.
    #[serde(rename = "ttl_ms")]
    Ttl,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Room => "room",
            Field::User => "user",
            Field::Session => "session",
            Field::Name => "name",
            Field::State => "state",
            Field::Token => "token",
            Field::Ttl => "ttl_ms",
        })
    }
}

/// Everything that can go wrong in a presence call. Every variant leaves the engine unchanged.
///
/// On the wire it is JSON tagged by `code`, e.g.
/// `{"code":"room_full","room":"r1","limit":100}`; [`PresenceError::status`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PresenceError {
    /// A field is empty, too long, or has a control character.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field at fault.
        field: Field,
        /// What is wrong with it.
        reason: String,
    },
    /// The session token is malformed, forged, or belongs to a session that has ended.
    #[error("the session token is not valid for any live session")]
    InvalidSessionToken,
    /// The room token was not issued by this server for this room.
    #[error("the room token is not valid")]
    InvalidRoomToken,
    /// A heartbeat names an existing session but does not carry that session's token.
    #[error(
        "session {session} already exists in this room and the request does not hold its token"
    )]
    SessionTokenMismatch {
        /// The session id that was claimed.
        session: String,
    },
    /// The room already holds as many sessions as it may.
    #[error("room {room} is full ({limit} sessions)")]
    RoomFull {
        /// The room.
        room: String,
        /// Its session cap.
        limit: usize,
    },
    /// This user already has as many live sessions as allowed.
    #[error("too many sessions for this user ({limit})")]
    TooManySessions {
        /// The cap.
        limit: usize,
    },
    /// This user is already present in as many rooms as allowed.
    #[error("present in too many rooms ({limit})")]
    TooManyRooms {
        /// The cap.
        limit: usize,
    },
    /// Too many requests from this session or address; retry after the given time.
    #[error("too many requests; retry in {retry_after_ms} ms")]
    TooManyRequests {
        /// How long to wait before the next request will be accepted, in ms.
        retry_after_ms: u64,
    },
    /// This client address holds as many open subscriptions (WebSockets) as one address may.
    #[error("too many open connections from this address ({limit})")]
    TooManyConnections {
        /// The cap.
        limit: usize,
    },
    /// The request body is larger than allowed.
    #[error("request body over {limit} bytes")]
    PayloadTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The request body did not arrive in time.
    #[error("the request body did not arrive within {limit_ms} ms")]
    RequestTimeout {
        /// How long the server waits for a body, in ms.
        limit_ms: u64,
    },
    /// The endpoint does not take this HTTP method.
    #[error("method not allowed; use {allowed}")]
    MethodNotAllowed {
        /// The method it takes.
        allowed: String,
    },
    /// The server requires an identity and the request has none.
    #[error("sign in first")]
    Unauthenticated,
    /// The caller's identity may not do this (e.g. act on another user's session).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why.
        reason: String,
    },
    /// The request could not be decoded (malformed body, missing argument).
    #[error("bad request: {message}")]
    BadRequest {
        /// What the decoder said.
        message: String,
    },
    /// The server is not set up for presence, or the request could not reach it.
    #[error("presence unavailable: {message}")]
    Unavailable {
        /// Why.
        message: String,
    },
}

impl PresenceError {
    /// The HTTP status code this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            PresenceError::InvalidInput { .. } | PresenceError::BadRequest { .. } => 400,
            PresenceError::InvalidSessionToken | PresenceError::Unauthenticated => 401,
            PresenceError::InvalidRoomToken
            | PresenceError::SessionTokenMismatch { .. }
            | PresenceError::Forbidden { .. } => 403,
            PresenceError::RoomFull { .. }
            | PresenceError::TooManySessions { .. }
            | PresenceError::TooManyRooms { .. } => 409,
            PresenceError::MethodNotAllowed { .. } => 405,
            PresenceError::RequestTimeout { .. } => 408,
            PresenceError::PayloadTooLarge { .. } => 413,
            PresenceError::TooManyRequests { .. } | PresenceError::TooManyConnections { .. } => 429,
            PresenceError::Unavailable { .. } => 503,
        }
    }

    /// A short machine-readable code, the same as the `code` tag on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            PresenceError::InvalidInput { .. } => "invalid_input",
            PresenceError::InvalidSessionToken => "invalid_session_token",
            PresenceError::InvalidRoomToken => "invalid_room_token",
            PresenceError::SessionTokenMismatch { .. } => "session_token_mismatch",
            PresenceError::RoomFull { .. } => "room_full",
            PresenceError::TooManySessions { .. } => "too_many_sessions",
            PresenceError::TooManyRooms { .. } => "too_many_rooms",
            PresenceError::TooManyRequests { .. } => "too_many_requests",
            PresenceError::TooManyConnections { .. } => "too_many_connections",
            PresenceError::RequestTimeout { .. } => "request_timeout",
            PresenceError::MethodNotAllowed { .. } => "method_not_allowed",
            PresenceError::PayloadTooLarge { .. } => "payload_too_large",
            PresenceError::Unauthenticated => "unauthenticated",
            PresenceError::Forbidden { .. } => "forbidden",
            PresenceError::BadRequest { .. } => "bad_request",
            PresenceError::Unavailable { .. } => "unavailable",
        }
    }

    pub(crate) fn invalid(field: Field, reason: impl Into<String>) -> Self {
        PresenceError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_tagged_by_code() {
        let e = PresenceError::RoomFull {
            room: "r1".into(),
            limit: 3,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "room_full");
        assert_eq!(json["code"], e.code());
        assert_eq!(json["limit"], 3);
        let back: PresenceError = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.status(), 409);
        assert_eq!(
            serde_json::to_value(PresenceError::InvalidSessionToken).unwrap()["code"],
            PresenceError::InvalidSessionToken.code()
        );
    }
}
