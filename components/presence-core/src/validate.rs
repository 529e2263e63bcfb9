//! Validation of ids, names and state. Each check returns a typed [`PresenceError::InvalidInput`].
//!
//! The rules, so that every name and id can be shown honestly:
//!
//! * **Ids** (room, user, session): 1 to [`MAX_ID_BYTES`] bytes, and no invisible control:
//!   no control characters, no format characters (byte-order marks, bidirectional overrides,
//!   zero-width characters, …), no line or paragraph separators.
//! * **Names**: surrounding whitespace is trimmed ([`normalize_name`]); what remains is 1 to
//!   [`MAX_NAME_CHARS`] characters with at least one visible character, no control characters,
//!   no line or paragraph separators, no bidirectional embeddings, overrides or isolates (the
//!   directional marks LRM, RLM and ALM are fine), no other invisible format characters (except
//!   a zero-width joiner or non-joiner between two visible characters or after a virama, as
//!   emoji and several scripts need, the Mongolian vowel separator between letters, and an emoji
//!   flag's tags), and no more than [`MAX_COMBINING_MARKS`] combining marks in a row.
//! * **State**: at most [`MAX_STATE_BYTES`] bytes of JSON, nested at most [`MAX_STATE_DEPTH`]
//!   levels deep (every message that carries it must stay decodable by any JSON decoder).

use crate::error::{Field, PresenceError};
use crate::limits::{
    MAX_COMBINING_MARKS, MAX_ID_BYTES, MAX_NAME_CHARS, MAX_STATE_BYTES, MAX_STATE_DEPTH,
};
use serde_json::Value;
use std::borrow::Cow;
use unicode_normalization::char::is_combining_mark;

/// A room, user or session id: non-empty, at most [`MAX_ID_BYTES`] bytes, no control, format or
/// separator characters.
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
    if let Some(c) = value.chars().find(|&c| is_invisible_control(c)) {
        return Err(PresenceError::invalid(
            field,
            format!(
                "must not contain control, format or separator characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The form a display name is stored and compared in (both stores call this): surrounding
/// whitespace trimmed. Validate the result with [`name`].
pub fn name_as_stored(raw: &str) -> &str {
    raw.trim()
}

/// A display name in its stored form ([`name_as_stored`]), or why it cannot be shown honestly.
/// Borrowed when nothing was trimmed.
pub fn normalize_name(value: &str) -> Result<Cow<'_, str>, PresenceError> {
    let trimmed = name_as_stored(value);
    name(trimmed)?;
    Ok(if trimmed.len() == value.len() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(trimmed.to_string())
    })
}

/// A display name as stored (already trimmed): see the module's rules.
pub fn name(value: &str) -> Result<(), PresenceError> {
    let bad = |reason: String| Err(PresenceError::invalid(Field::Name, reason));
    if value.trim().is_empty() {
        return bad("must not be blank".into());
    }
    if value.trim().len() != value.len() {
        return bad("must not start or end with whitespace".into());
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > MAX_NAME_CHARS {
        return bad(format!(
            "is {} characters; at most {MAX_NAME_CHARS} allowed",
            chars.len()
        ));
    }
    let mut marks = 0;
    // Inside an emoji flag's tag sequence (🏴 + letters/digits as tags + CANCEL TAG): how many
    // tags so far.
    let mut flag_tags: Option<usize> = None;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            return bad(format!(
                "must not contain control characters or line breaks (found U+{:04X})",
                c as u32
            ));
        }
        if is_bidi_control(c) {
            return bad(format!(
                "must not contain bidirectional controls (found U+{:04X}), which reorder how it reads",
                c as u32
            ));
        }
        if is_tag(c) {
            // Only a flag's tags (🏴󠁧󠁢󠁳󠁣󠁴󠁿: 1 to 7 of a–z or 0–9, then CANCEL TAG); anything else is
            // text hidden from the reader.
            let tag_letter = matches!(c, '\u{E0061}'..='\u{E007A}' | '\u{E0030}'..='\u{E0039}');
            flag_tags = match flag_tags {
                Some(n) if tag_letter && n < 7 => Some(n + 1),
                Some(n) if c == '\u{E007F}' && n > 0 => None,
                _ => {
                    return bad(format!(
                        "must not contain invisible tag characters (found U+{:04X})",
                        c as u32
                    ))
                }
            };
        } else if flag_tags.is_some_and(|n| n > 0) {
            return bad("an emoji flag's tags must end with CANCEL TAG".into());
        } else {
            flag_tags = (c == '\u{1F3F4}').then_some(0);
        }
        if is_format(c) && !is_tag(c) && !is_directional_mark(c) {
            // Joiners (and the Mongolian vowel separator) join two visible characters; after a
            // virama a joiner may also end a word (Malayalam chillu, Sinhala).
            let joiner = matches!(c, '\u{200C}' | '\u{200D}' | '\u{180E}');
            // The character it joins from: the base before any marks or variation selectors.
            let before = chars[..i]
                .iter()
                .rev()
                .find(|&&b| !is_combining_mark(b) && !is_variation_selector(b));
            let after_virama = i > 0 && is_virama(chars[i - 1]) && c != '\u{180E}';
            let between_visible = before.is_some_and(|&b| !is_invisible(b))
                && (after_virama || chars.get(i + 1).is_some_and(|&a| !is_invisible(a)));
            if !(joiner && between_visible) {
                return bad(format!(
                    "must not contain invisible format characters (found U+{:04X})",
                    c as u32
                ));
            }
        }
        if is_combining_mark(c) {
            marks += 1;
            if marks > MAX_COMBINING_MARKS {
                return bad(format!(
                    "must not stack more than {MAX_COMBINING_MARKS} combining marks on one character"
                ));
            }
        } else {
            marks = 0;
        }
    }
    if chars.iter().all(|&c| is_invisible(c)) {
        return bad("must contain at least one visible character".into());
    }
    Ok(())
}

/// A heartbeat's `ttl_ms`: only an agent's may set one (a person's session lives by its
/// interval, so that a closed laptop shows offline in seconds, not after a TTL).
pub fn ttl(kind: crate::wire::PresenceKind, ttl_ms: Option<u64>) -> Result<(), PresenceError> {
    if ttl_ms.is_some() && kind != crate::wire::PresenceKind::Agent {
        return Err(PresenceError::invalid(
            Field::Ttl,
            "only an agent's heartbeat may set ttl_ms (kind \"agent\")",
        ));
    }
    Ok(())
}

/// App-defined state: at most [`MAX_STATE_BYTES`] bytes once serialized as JSON, nested at most
/// [`MAX_STATE_DEPTH`] levels deep.
pub fn state(value: &Value) -> Result<(), PresenceError> {
    let depth = depth(value);
    if depth > MAX_STATE_DEPTH {
        return Err(PresenceError::invalid(
            Field::State,
            format!("is nested {depth} levels deep; at most {MAX_STATE_DEPTH} allowed"),
        ));
    }
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

/// Nesting depth: a scalar is 0, `[]` and `{}` are 1, `[[1]]` is 2. Iterative, so a hostile value
/// cannot overflow the stack here.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Control (Cc), format (Cf), line and paragraph separators: nothing an id may hold.
fn is_invisible_control(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Characters that show nothing by themselves: whitespace, format characters, combining marks,
/// variation selectors and the blank "filler" letters some fonts draw as nothing.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_format(c)
        || is_combining_mark(c)
        || matches!(c,
            '\u{034F}'                     // combining grapheme joiner
            | '\u{115F}' | '\u{1160}'      // Hangul choseong / jungseong fillers
            | '\u{17B4}' | '\u{17B5}'      // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}'      // Mongolian free variation selectors
            | '\u{2800}'                   // braille blank
            | '\u{3164}'                   // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'      // variation selectors
            | '\u{FFA0}'                   // halfwidth Hangul filler
            | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        )
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Bidirectional embeddings, overrides and isolates: they reorder whole runs of text. (The
/// directional marks LRM, RLM and ALM only settle the direction of a neighbour; right-to-left
/// keyboards type them, and they are allowed.)
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Left-to-right, right-to-left and Arabic letter marks.
fn is_directional_mark(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// The virama (halant) of the Indic scripts, after which a joiner shapes a conjunct or a
/// half-form.
fn is_virama(c: char) -> bool {
    matches!(
        c,
        '\u{094D}'
            | '\u{09CD}'
            | '\u{0A4D}'
            | '\u{0ACD}'
            | '\u{0B4D}'
            | '\u{0BCD}'
            | '\u{0C4D}'
            | '\u{0CCD}'
            | '\u{0D4D}'
            | '\u{0DCA}'
            | '\u{1B44}'
            | '\u{A9C0}'
    )
}

/// Tag characters (U+E0020 to U+E007F): invisible, used only inside emoji flags.
fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// General category Cf (format), Unicode 15.1.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
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
        assert!(id(Field::Room, "a room: with spaces/and.dots").is_ok());
        assert!(id(Field::Room, &"x".repeat(128)).is_ok());
        assert_eq!(field_of(id(Field::Room, "")), Field::Room);
        assert_eq!(field_of(id(Field::User, &"x".repeat(129))), Field::User);
        assert_eq!(field_of(id(Field::Session, "a\nb")), Field::Session);
        assert_eq!(field_of(id(Field::Session, "a\u{7f}b")), Field::Session);
        // 128 bytes is the limit, not 128 characters.
        assert_eq!(field_of(id(Field::Room, &"é".repeat(65))), Field::Room);
    }

    #[test]
    fn ids_refuse_invisible_characters() {
        for bad in [
            "\u{FEFF}ada", // a leading byte-order mark: looks like "ada"
            "ad\u{200B}a", // zero-width space
            "ada\u{202E}", // right-to-left override
            "a\u{2028}b",  // line separator
            "a\u{2029}b",  // paragraph separator
            "a\u{E0041}b", // tag character
            "\u{2066}ada", // isolate
        ] {
            assert_eq!(field_of(id(Field::User, bad)), Field::User, "{bad:?}");
        }
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
        assert_eq!(
            field_of(name(" Ada")),
            Field::Name,
            "stored names are trimmed"
        );
    }

    #[test]
    fn names_in_any_script_and_emoji_are_fine() {
        for good in [
            "李 小龙",
            "Nguyễn Thị Minh Khai", // Vietnamese: two marks on one letter
            "Zoë",
            "Z\u{0308}oe", // a decomposed diaeresis
            "मनोज कुमार",
            "محمد",
            "שָׁלוֹם",
            "👩\u{200D}💻 Dev",    // a ZWJ emoji
            "🏳\u{FE0F}\u{200D}🌈", // variation selector + ZWJ
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // flag of Scotland
            "می\u{200C}خواهم",     // Persian zero-width non-joiner between letters
            "🦀",
            "\u{200F}שלום\u{200F} Cohen", // right-to-left marks, as RTL keyboards type them
            "\u{0D28}\u{0D4D}\u{200D}",   // a Malayalam chillu: virama + ZWJ ending the word
            "\u{1820}\u{180E}\u{1821}",   // Mongolian vowel separator between letters
        ] {
            assert!(name(good).is_ok(), "{good:?}: {:?}", name(good));
        }
    }

    #[test]
    fn names_that_cannot_be_shown_honestly_are_refused() {
        for bad in [
            "Ada\u{202E}gnp.exe",       // right-to-left override: reads "Adaexe.png"
            "\u{2067}Ada",              // right-to-left isolate
            "Ada\u{E0067}\u{E007F}",    // a flag's tags without the flag
            "\u{200B}\u{200B}\u{200B}", // only zero-width spaces
            "\u{200D}",                 // a lone joiner
            "\u{200D}Ada",              // a joiner with nothing before it
            "\u{3164}\u{3164}",         // Hangul fillers: blank
            "\u{2800}",                 // braille blank
            "\u{FE0F}",                 // a lone variation selector
            "Ada\u{2028}Lovelace",      // line separator
            "Ada\u{2029}Lovelace",      // paragraph separator
            "Ada\u{FEFF}",              // byte-order mark
            "A\u{0301}\u{0302}\u{0303}\u{0304}\u{0305}\u{0306}da", // a stack of six marks
            "Ada\u{E0041}\u{E0042}",    // tags smuggling hidden text
            // Tags after a flag smuggling text (upper case, a space, no CANCEL TAG).
            "\u{1F3F4}\u{E0048}\u{E0049}\u{E0020}\u{E0074}\u{E0068}\u{E0065}\u{E0072}",
            "\u{1F3F4}\u{E0067}\u{E0062}Ada", // a flag's tags never closed
            "\u{200F}",                       // only a directional mark
            "Ada\u{00AD}",                    // soft hyphen
        ] {
            assert_eq!(field_of(name(bad)), Field::Name, "{bad:?}");
        }
    }

    #[test]
    fn normalizing_trims_and_then_validates() {
        assert_eq!(normalize_name("Ada").unwrap(), Cow::Borrowed("Ada"));
        assert_eq!(normalize_name("  Ada \n").unwrap(), "Ada");
        assert!(matches!(normalize_name("  Ada "), Ok(Cow::Owned(_))));
        assert!(normalize_name(" \u{200B} ").is_err());
        assert!(
            normalize_name("\u{FEFF}Ada").is_err(),
            "a BOM is not whitespace"
        );
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

    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for i in 0..levels {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({ "a": v })
            };
        }
        v
    }

    #[test]
    fn deep_state_is_refused_before_it_can_poison_a_room() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": 2}]})), 3);
        assert!(state(&nested(MAX_STATE_DEPTH)).is_ok());
        // 124 levels fit in 4 KiB and used to be accepted; every message carrying them was then
        // deeper than decoders allow (serde_json stops at 128).
        for levels in [MAX_STATE_DEPTH + 1, 124, 126] {
            let v = nested(levels);
            assert!(serde_json::to_string(&v).unwrap().len() < MAX_STATE_BYTES);
            assert_eq!(field_of(state(&v)), Field::State, "{levels} levels");
        }
    }

    #[test]
    fn the_deepest_allowed_state_decodes_inside_every_message() {
        use crate::wire::{
            RoomMessage, RoomSnapshot, SessionPresence, SessionStatus, UserPresence,
        };
        let user = UserPresence {
            user_id: "u".into(),
            name: "U".into(),
            kind: Default::default(),
            online: true,
            away: false,
            idle: false,
            online_since: 1,
            last_seen: None,
            sessions: vec![SessionPresence {
                session_id: "s".into(),
                name: "U".into(),
                status: SessionStatus::Active,
                kind: Default::default(),
                idle_since: None,
                state: Some(nested(MAX_STATE_DEPTH)),
                joined_at: 0,
                joined_seq: 1,
            }],
        };
        for message in [
            RoomMessage::Snapshot(RoomSnapshot {
                room: "r".into(),
                seq: 1,
                users: vec![user.clone()],
            }),
            RoomMessage::Joined {
                seq: 1,
                session_id: "s".into(),
                session: user.sessions[0].clone(),
                user: user.head(),
            },
        ] {
            let json = serde_json::to_string(&message).unwrap();
            let back: RoomMessage = serde_json::from_str(&json).expect("decodable");
            assert_eq!(back, message);
        }
    }
}
