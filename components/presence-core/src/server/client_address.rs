//! Which address a request counts against for the per-address rate limit.

use std::net::IpAddr;

/// The client's address: the connection's own (`peer`), unless `peer` is one of
/// `trusted_proxies`, in which case `X-Forwarded-For` (`forwarded_for`) is read from the right,
/// past every trusted proxy, to the first address none of them vouches for. A header from an
/// untrusted peer is ignored: anyone can write one.
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break; // garbage: stop at the last address we could read
        };
        client = address;
        if !trusted_proxies.contains(&address) {
            break;
        }
    }
    client
}

/// What per-address limits count a client by: an IPv4 address as it is, an IPv6 address by its
/// /64 network (one host commonly holds a whole /64 and could otherwise take a fresh address for
/// every request), an IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(network.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_count_an_ipv6_host_by_its_64_and_leave_ipv4_alone() {
        assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "one /64, one key"
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn only_trusted_proxies_are_believed_and_only_up_to_the_first_untrusted_hop() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // Directly from a client: the header is the client's own claim, ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), Some("1.2.3.4"), &proxies),
            ip("203.0.113.9")
        );
        // Through one proxy.
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("198.51.100.7"), &proxies),
            ip("198.51.100.7")
        );
        // Through two; whatever the client prepended is not believed.
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.2"),
                &proxies
            ),
            ip("198.51.100.7")
        );
        // No header, or garbage: the proxy itself (or the last readable hop).
        assert_eq!(
            client_address(ip("10.0.0.1"), None, &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("not an ip"), &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("x, 2001:db8::1"), &proxies),
            ip("2001:db8::1")
        );
        // Nobody trusted: never read.
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("1.2.3.4"), &[]),
            ip("10.0.0.1")
        );
    }
}
