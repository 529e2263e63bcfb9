//! The error type of the presence server functions.

use presence_core::PresenceError;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// A [`PresenceError`] as returned by the server functions: the same JSON on the wire
/// (`{"code":"…", …}`), plus transport failures folded into `bad_request` / `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error(transparent)]
pub struct ApiError(pub PresenceError);

impl ApiError {
    /// The presence error inside.
    pub fn kind(&self) -> &PresenceError {
        &self.0
    }
}

impl From<PresenceError> for ApiError {
    fn from(e: PresenceError) -> Self {
        ApiError(e)
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ApiError(match value {
            ServerFnErrorErr::Args(message)
            | ServerFnErrorErr::MissingArg(message)
            | ServerFnErrorErr::Deserialization(message) => PresenceError::BadRequest { message },
            ServerFnErrorErr::Request(message) => PresenceError::Unavailable {
                message: format!("request failed: {message}"),
            },
            other => PresenceError::Unavailable {
                message: other.to_string(),
            },
        })
    }
}
