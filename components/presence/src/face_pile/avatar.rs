//! How a face looks: initials, a colour from the user id, and "last seen" in words.

use unicode_segmentation::UnicodeSegmentation;

/// Up to two initials: the first grapheme of the first and of the last word, upper-cased.
/// Works for any script and for emoji ("Ada Lovelace" → "AL", "éva" → "É", "🦀 Ferris" → "🦀F").
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first_grapheme = |w: &str| w.graphemes(true).next().unwrap_or("").to_uppercase();
    match words.as_slice() {
        [] => "?".into(),
        [only] => first_grapheme(only),
        [first, .., last] => format!("{}{}", first_grapheme(first), first_grapheme(last)),
    }
}

/// A hue (0–359) derived from the user id: the same user has the same colour everywhere.
pub fn hue(user_id: &str) -> u32 {
    // FNV-1a: tiny, stable across platforms and releases.
    let mut hash: u32 = 0x811c_9dc5;
    for b in user_id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % 360
}

/// The CSS colour of a user's face (white initials stay readable on it).
pub fn color(user_id: &str) -> String {
    format!("hsl({} 55% 40%)", hue(user_id))
}

/// How long `ms` is, as a person would say it after "for": "under a minute", "6 min", "2 h",
/// "3 days".
pub fn for_how_long(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => "under a minute".into(),
        60..=3_599 => format!("{} min", secs / 60),
        3_600..=86_399 => format!("{} h", secs / 3_600),
        _ => match secs / 86_400 {
            1 => "1 day".into(),
            days => format!("{days} days"),
        },
    }
}

/// "just now", "1 min ago", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..=44 => "just now".into(),
        45..=89 => "1 min ago".into(),
        90..=3_599 => format!("{} min ago", (secs + 30) / 60),
        3_600..=86_399 => format!("{} h ago", secs / 3_600),
        _ => match secs / 86_400 {
            1 => "1 day ago".into(),
            days => format!("{days} days ago"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_unicode_aware() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("ada"), "A");
        assert_eq!(initials("  grace   brewster murray hopper "), "GH");
        assert_eq!(initials("éva žák"), "ÉŽ");
        assert_eq!(initials("ß"), "SS");
        assert_eq!(initials("🦀 Ferris"), "🦀F");
        assert_eq!(initials("👩‍💻 Dev"), "👩‍💻D", "a ZWJ emoji is one grapheme");
        assert_eq!(initials("李 小龙"), "李小");
        assert_eq!(initials("   "), "?");
        assert_eq!(initials("<img src=x>"), "<S", "markup is just text here");
    }

    #[test]
    fn colours_are_stable_and_spread() {
        assert_eq!(hue("user-1"), hue("user-1"));
        assert_eq!(color("user-1"), color("user-1"));
        let hues: std::collections::HashSet<u32> =
            (0..100).map(|i| hue(&format!("user-{i}")) / 30).collect();
        assert!(
            hues.len() >= 10,
            "100 users land in most of the 12 hue bands"
        );
    }

    #[test]
    fn how_long_reads_like_a_person_would_say_it() {
        assert_eq!(for_how_long(30_000), "under a minute");
        assert_eq!(for_how_long(6 * 60_000 + 20_000), "6 min");
        assert_eq!(for_how_long(2 * 3_600_000), "2 h");
        assert_eq!(for_how_long(86_400_000), "1 day");
    }

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        let t = 1_000_000_000;
        assert_eq!(ago(t, t), "just now");
        assert_eq!(
            ago(t, t + 5_000),
            "just now",
            "clock skew never goes negative"
        );
        assert_eq!(ago(t + 60_000, t), "1 min ago");
        assert_eq!(ago(t + 180_000, t), "3 min ago");
        assert_eq!(ago(t + 3 * 3_600_000, t), "3 h ago");
        assert_eq!(ago(t + 86_400_000, t), "1 day ago");
        assert_eq!(ago(t + 3 * 86_400_000, t), "3 days ago");
    }
}
