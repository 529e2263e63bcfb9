//! How many subscriptions (WebSockets) each client address holds on this server.

use presence_core::PresenceError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The open sockets per address, shared by every subscription of one mounted engine.
#[derive(Clone, Debug, Default)]
pub(crate) struct SocketCounter {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open socket, counted until dropped.
#[derive(Debug)]
pub(crate) struct SocketPermit {
    counter: SocketCounter,
    address: IpAddr,
}

impl SocketCounter {
    /// Counts one more socket from `address` (an IPv6 address by its /64), or refuses if it
    /// already holds `limit`.
    pub fn open(&self, address: IpAddr, limit: usize) -> Result<SocketPermit, PresenceError> {
        let address = presence_core::server::limit_key(address);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= limit {
            return Err(PresenceError::TooManyConnections { limit });
        }
        *count += 1;
        Ok(SocketPermit {
            counter: self.clone(),
            address,
        })
    }

    #[cfg(test)]
    fn held(&self, address: IpAddr) -> usize {
        let open = self.open.lock().unwrap();
        open.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_the_limit_and_gets_them_back_on_close() {
        let counter = SocketCounter::default();
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let first = counter.open(a, 2).unwrap();
        let _second = counter.open(a, 2).unwrap();
        assert_eq!(
            counter.open(a, 2).unwrap_err(),
            PresenceError::TooManyConnections { limit: 2 }
        );
        let _other = counter.open(b, 2).expect("addresses are counted apart");
        drop(first);
        assert_eq!(counter.held(a), 1);
        let _third = counter.open(a, 2).expect("a closed socket frees its place");
        // One IPv6 host's many addresses are one address here.
        let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let _x = counter.open(v6("2001:db8::1"), 2).unwrap();
        let _y = counter.open(v6("2001:db8::2"), 2).unwrap();
        assert!(counter.open(v6("2001:db8::ffff"), 2).is_err());
    }
}
