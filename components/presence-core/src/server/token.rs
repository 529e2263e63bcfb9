//! Session tokens (random capabilities) and room tokens (signed capabilities).

use crate::error::{Field, PresenceError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SESSION_TOKEN_BYTES: usize = 32;
const ROOM_MAC_BYTES: usize = 16;

/// The capability to act on one session: 256 random bits from the OS, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionToken([u8; SESSION_TOKEN_BYTES]);

impl SessionToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system has no random source");
        SessionToken(bytes)
    }

    /// Parses the 64-hex-digit form.
    pub fn parse(text: &str) -> Result<Self, PresenceError> {
        let bytes = decode_hex::<SESSION_TOKEN_BYTES>(text).ok_or(PresenceError::InvalidInput {
            field: Field::Token,
            reason: format!("a session token is {} hex digits", SESSION_TOKEN_BYTES * 2),
        })?;
        Ok(SessionToken(bytes))
    }

    /// True if `text` is this token's hex form (either case). Compares in constant time
    /// for a well-formed `text`.
    pub fn matches_hex(&self, text: &str) -> bool {
        let text = text.as_bytes();
        if text.len() != SESSION_TOKEN_BYTES * 2 {
            return false;
        }
        let mut diff = 0u8;
        let mut bad = false;
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
            bad |= hi == 0xff || lo == 0xff;
            diff |= (hi << 4 | (lo & 0x0f)) ^ self.0[i];
        }
        !bad && diff == 0
    }

    /// Whether a token a client proposed for its new session looks random enough to adopt: at
    /// least 8 of the 16 hex digits appear in it. 64 random digits miss that with a probability
    /// far below 10⁻²⁰; a made-up token like all zeros or `abab…` does not, and the server then
    /// makes one of its own.
    pub fn looks_random(&self) -> bool {
        let mut seen = 0u16;
        for byte in self.0 {
            seen |= 1 << (byte >> 4) | 1 << (byte & 15);
        }
        seen.count_ones() >= 8
    }

    /// The 64-hex-digit form.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// Signs and checks room tokens: `{32 hex digits of HMAC-SHA256(key, room)}.{room}`.
///
/// A room token is handed out by a successful heartbeat and lets its holder list and subscribe
/// to that room (and no other) without re-sending ids, so every member can share one cache key.
#[derive(Clone)]
pub struct RoomTokenKey(Hmac<Sha256>);

impl RoomTokenKey {
    /// A key from secret bytes (any length).
    pub fn new(secret: &[u8]) -> Self {
        RoomTokenKey(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    /// A key from 32 random bytes.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system has no random source");
        RoomTokenKey::new(&secret)
    }

    /// The token for `room`.
    pub fn sign(&self, room: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(room.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{}.{room}", encode_hex(&tag[..ROOM_MAC_BYTES]))
    }

    /// The room a token grants, if the token is genuine.
    pub fn verify<'t>(&self, token: &'t str) -> Result<&'t str, PresenceError> {
        let (tag, room) = token
            .split_once('.')
            .ok_or(PresenceError::InvalidRoomToken)?;
        let tag = decode_hex::<ROOM_MAC_BYTES>(tag).ok_or(PresenceError::InvalidRoomToken)?;
        let mut mac = self.0.clone();
        mac.update(room.as_bytes());
        mac.verify_truncated_left(&tag)
            .map_err(|_| PresenceError::InvalidRoomToken)?;
        Ok(room)
    }
}

impl std::fmt::Debug for RoomTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomTokenKey(..)")
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Hex digit values by byte; 0xff for bytes that are not hex digits.
const HEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        if hi == 0xff || lo == 0xff {
            return None;
        }
        out[i] = hi << 4 | lo;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_round_trip_and_differ() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(SessionToken::parse(&a.to_hex()).unwrap(), a);
        assert_eq!(a.to_hex().len(), 64);
        assert!(matches!(
            SessionToken::parse("nothex"),
            Err(PresenceError::InvalidInput {
                field: Field::Token,
                ..
            })
        ));
        assert!(SessionToken::parse(&"g".repeat(64)).is_err());
        assert_eq!(format!("{a:?}"), "SessionToken(..)");
        assert!(a.matches_hex(&a.to_hex()));
        assert!(a.matches_hex(&a.to_hex().to_uppercase()));
        assert!(!a.matches_hex(&b.to_hex()));
        assert!(!a.matches_hex(&a.to_hex()[..63]));
        let mut wrong = a.to_hex();
        wrong.replace_range(0..1, "g");
        assert!(!a.matches_hex(&wrong));
        assert!(a.looks_random() && b.looks_random());
        for weak in [
            "0".repeat(64),
            "ab".repeat(32),
            "0123456".repeat(10)[..64].to_string(),
        ] {
            assert!(
                !SessionToken::parse(&weak).unwrap().looks_random(),
                "{weak}"
            );
        }
    }

    #[test]
    fn room_tokens_bind_the_room_and_the_key() {
        let key = RoomTokenKey::new(b"secret");
        let token = key.sign("room.with.dots");
        assert_eq!(key.verify(&token).unwrap(), "room.with.dots");
        let other_room = token.replace("room.with.dots", "other");
        assert_eq!(
            key.verify(&other_room),
            Err(PresenceError::InvalidRoomToken)
        );
        assert_eq!(
            RoomTokenKey::new(b"other key").verify(&token),
            Err(PresenceError::InvalidRoomToken)
        );
        assert_eq!(key.verify("garbage"), Err(PresenceError::InvalidRoomToken));
        assert_eq!(key.verify(""), Err(PresenceError::InvalidRoomToken));
    }
}
