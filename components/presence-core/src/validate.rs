//! Validation of ids, names and state. Each check returns a typed [`PresenceError::InvalidInput`].

use crate::error::{Field, PresenceError};
use crate::limits::{MAX_ID_BYTES, MAX_NAME_CHARS, MAX_STATE_BYTES};

/// A room, user or session id: non-empty, at most [`MAX_ID_BYTES`] bytes, no control characters.
pub fn id(field: Field, value: &str) -> Result<(), PresenceError> {
    if value.is_empty() {
        return Err(PresenceError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(PresenceError::invalid(
            field,
            format!("is {} bytes; at most {MAX_ID_BYTES} allowed", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(PresenceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A display name: non-blank, at most [`MAX_NAME_CHARS`] characters, no control characters.
pub fn name(value: &str) -> Result<(), PresenceError> {
    if value.trim().is_empty() {
        return Err(PresenceError::invalid(Field::Name, "must not be blank"));
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(PresenceError::invalid(
            Field::Name,
            format!("is {chars} characters; at most {MAX_NAME_CHARS} allowed"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(PresenceError::invalid(
            Field::Name,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// App-defined state: at most [`MAX_STATE_BYTES`] bytes once serialized as JSON.
pub fn state(value: &serde_json::Value) -> Result<(), PresenceError> {
    let mut counter = ByteCounter(0);
    // Writing into a counter cannot fail for a `Value`; a failure would be a serde_json bug.
    let _ = serde_json::to_writer(&mut counter, value);
    if counter.0 > MAX_STATE_BYTES {
        return Err(PresenceError::invalid(
            Field::State,
            format!(
                "is {} bytes of JSON; at most {MAX_STATE_BYTES} allowed",
                counter.0
            ),
        ));
    }
    Ok(())
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(r: Result<(), PresenceError>) -> Field {
        match r {
            Err(PresenceError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn ids() {
        assert!(id(Field::Room, "r1").is_ok());
        assert!(id(Field::Room, &"x".repeat(128)).is_ok());
        assert_eq!(field_of(id(Field::Room, "")), Field::Room);
        assert_eq!(field_of(id(Field::User, &"x".repeat(129))), Field::User);
        assert_eq!(field_of(id(Field::Session, "a\nb")), Field::Session);
        assert_eq!(field_of(id(Field::Session, "a\u{7f}b")), Field::Session);
        // 128 bytes is the limit, not 128 characters.
        assert_eq!(field_of(id(Field::Room, &"é".repeat(65))), Field::Room);
    }

    #[test]
    fn names() {
        assert!(name("Ada Lovelace").is_ok());
        assert!(name(&"é".repeat(64)).is_ok());
        assert!(name("<img src=x onerror=alert(1)>").is_ok());
        assert_eq!(field_of(name("")), Field::Name);
        assert_eq!(field_of(name("   ")), Field::Name);
        assert_eq!(field_of(name(&"é".repeat(65))), Field::Name);
        assert_eq!(field_of(name("tab\there")), Field::Name);
    }

    #[test]
    fn states() {
        assert!(state(&json!({"section": "intro", "typing": true})).is_ok());
        // {"a":"…"} is 8 bytes of punctuation around the string.
        assert!(state(&json!({"a": "x".repeat(4096 - 8)})).is_ok());
        assert_eq!(
            field_of(state(&json!({"a": "x".repeat(4096 - 7)}))),
            Field::State
        );
    }
}
