//! The hosts of an ORIGINAL_DST cluster: one per destination it has connected to. As in Envoy 1.40 (checked on
//! the real binary), a host stays while any connection to it is open, idle or not, and is forgotten at the
//! `cleanup_interval` sweep once it has had none for a whole interval, so a sidecar calling many destinations
//! keeps state only for those it still talks to. Only connection opens and closes touch this map, never a
//! request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Destinations {
    hosts: Mutex<HashMap<SocketAddr, Host>>,
}

#[derive(Default)]
struct Host {
    connections: usize,
    /// Seen without a connection at the last sweep: the next one forgets it.
    unused: bool,
}

impl Destinations {
    /// Counts a connection to `address` until the guard is dropped.
    pub fn connected(self: &Arc<Self>, address: SocketAddr) -> DestinationConnection {
        if let Ok(mut hosts) = self.hosts.lock() {
            let host = hosts.entry(address).or_default();
            host.connections += 1;
            host.unused = false;
        }
        DestinationConnection {
            destinations: self.clone(),
            address,
        }
    }

    /// The `cleanup_interval` pass: forgets the hosts that had no connection since the previous one.
    pub fn sweep(&self) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.retain(|_, host| {
                if host.connections > 0 {
                    host.unused = false;
                    return true;
                }
                let keep = !host.unused;
                host.unused = true;
                keep
            });
        }
    }

    /// The current hosts, sorted (for `/clusters`).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let mut addresses: Vec<SocketAddr> = self
            .hosts
            .lock()
            .map(|hosts| hosts.keys().copied().collect())
            .unwrap_or_default();
        addresses.sort();
        addresses
    }
}

/// One open connection to a destination.
pub struct DestinationConnection {
    destinations: Arc<Destinations>,
    address: SocketAddr,
}

impl Drop for DestinationConnection {
    fn drop(&mut self) {
        if let Ok(mut hosts) = self.destinations.hosts.lock()
            && let Some(host) = hosts.get_mut(&self.address)
        {
            host.connections = host.connections.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_goes_at_the_second_sweep_without_a_connection() {
        let destinations = Arc::new(Destinations::default());
        let a: SocketAddr = "198.18.0.1:80".parse().unwrap();
        let b: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let held = destinations.connected(a);
        drop(destinations.connected(b));
        destinations.sweep();
        assert_eq!(
            destinations.addresses(),
            vec![a, b],
            "b kept for one interval"
        );
        destinations.sweep();
        assert_eq!(destinations.addresses(), vec![a], "a has a connection");
        drop(held);
        destinations.sweep();
        destinations.sweep();
        assert!(destinations.addresses().is_empty());
    }
}
