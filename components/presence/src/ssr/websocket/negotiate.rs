//! `permessage-deflate` negotiation (RFC 7692 §5, §7.1): which of a client's offers this server
//! takes, and what it answers.

/// The window this server keeps for a subscriber (2^12 = 4 KB: a dozen join diffs back) unless
/// the client asks for less.
pub(crate) const DEFAULT_WINDOW_BITS: u8 = 12;

/// What was agreed for the server's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// Matches reach back at most `2^window_bits` bytes.
    pub(crate) window_bits: u8,
    /// Whether a message may refer to the ones before it.
    pub(crate) takeover: bool,
    /// The client asked for `server_max_window_bits` (the answer must then carry it).
    bits_asked: bool,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` answer.
    pub(crate) fn header(&self) -> String {
        let mut answer = String::from("permessage-deflate");
        if !self.takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if self.bits_asked {
            answer.push_str(&format!("; server_max_window_bits={}", self.window_bits));
        }
        answer
    }
}

/// The first `permessage-deflate` offer among `headers` (each a `Sec-WebSocket-Extensions`
/// value: offers separated by commas) that this server can honour; `None` sends uncompressed.
///
/// An offer with a parameter this server does not know, a repeated one or a bad value is
/// declined, as §7.1 asks, and the next one is tried.
pub(crate) fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
    headers
        .into_iter()
        .flat_map(|header| header.split(','))
        .find_map(offer)
}

fn offer(offer: &str) -> Option<Agreed> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut agreed = Agreed {
        window_bits: DEFAULT_WINDOW_BITS,
        takeover: true,
        bits_asked: false,
    };
    let mut seen: Vec<String> = Vec::new();
    for parameter in parts {
        let (name, value) = match parameter.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (parameter, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => agreed.takeover = false,
            // What the client does with its own messages; this server reads none compressed.
            ("client_no_context_takeover", None) => {}
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(bits)) => {
                bits_value(bits)?;
            }
            ("server_max_window_bits", Some(bits)) => {
                agreed.window_bits = agreed.window_bits.min(bits_value(bits)?);
                agreed.bits_asked = true;
            }
            _ => return None,
        }
        seen.push(name);
    }
    Some(agreed)
}

/// A window size parameter: 8 to 15, digits only (§7.1.2).
fn bits_value(value: &str) -> Option<u8> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Option<Agreed> {
        negotiate([header])
    }

    #[test]
    fn chromium_and_nodes_ws_offers_are_taken_with_the_window_kept() {
        // What Chromium and Node's `ws` send.
        let agreed = one("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!((agreed.window_bits, agreed.takeover), (12, true));
        assert_eq!(agreed.header(), "permessage-deflate");
    }

    #[test]
    fn a_clients_limits_on_the_server_are_honoured_and_answered() {
        let agreed = one("permessage-deflate; server_no_context_takeover").unwrap();
        assert!(!agreed.takeover);
        assert_eq!(
            agreed.header(),
            "permessage-deflate; server_no_context_takeover"
        );
        let agreed = one("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(agreed.window_bits, 10);
        assert_eq!(
            agreed.header(),
            "permessage-deflate; server_max_window_bits=10"
        );
        // Asking for more than the server keeps: it keeps its own, and says so.
        let agreed = one("permessage-deflate; server_max_window_bits=15").unwrap();
        assert_eq!(
            agreed.header(),
            "permessage-deflate; server_max_window_bits=12"
        );
        let agreed = one("permessage-deflate; server_max_window_bits=\"9\"").unwrap();
        assert_eq!(agreed.window_bits, 9);
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_is_tried() {
        for bad in [
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=1x",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "permessage-deflate; client_max_window_bits=20",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(one(bad), None, "{bad}");
        }
        let agreed = negotiate([
            "permessage-deflate; unknown, permessage-deflate; server_max_window_bits=11",
        ])
        .unwrap();
        assert_eq!(agreed.window_bits, 11);
        let agreed = negotiate(["x-other", "Permessage-Deflate"]).unwrap();
        assert!(agreed.takeover);
        assert_eq!(negotiate(std::iter::empty()), None);
    }
}
