//! Draining: one trigger, many watchers. Listeners stop accepting and connections wind down when it fires.
//! The proxy has one drain; each listener has a child of it, which also fires alone when a configuration update
//! removes or replaces that listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Drain {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
    /// The proxy's drain, for a listener's.
    parent: Option<watch::Receiver<bool>>,
}

impl Default for Drain {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            receiver,
            connections: Arc::default(),
            parent: None,
        }
    }
}

impl Drain {
    pub fn start(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.receiver.borrow() || self.parent.as_ref().is_some_and(|p| *p.borrow())
    }

    /// Resolves once the drain (or its parent's) has started.
    pub async fn started(&self) {
        let mut own = self.receiver.clone();
        match self.parent.clone() {
            None => {
                let _ = own.wait_for(|draining| *draining).await;
            }
            Some(mut parent) => {
                tokio::select! {
                    _ = own.wait_for(|draining| *draining) => {}
                    _ = parent.wait_for(|draining| *draining) => {}
                }
            }
        }
    }

    /// A drain that starts with this one, or alone; its connections count in this one's.
    pub fn child(&self) -> Drain {
        let (sender, receiver) = watch::channel(false);
        Drain {
            sender: Arc::new(sender),
            receiver,
            connections: self.connections.clone(),
            parent: Some(self.receiver.clone()),
        }
    }

    /// Counts a connection as open until the guard drops.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            connections: self.connections.clone(),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

pub struct ConnectionGuard {
    connections: Arc<AtomicUsize>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_child_drains_alone_or_with_its_parent() {
        let proxy = Drain::default();
        let (first, second) = (proxy.child(), proxy.child());
        let _guard = first.connection();
        assert_eq!(proxy.open_connections(), 1);
        first.start();
        tokio::time::timeout(Duration::from_secs(1), first.started())
            .await
            .unwrap();
        assert!(first.is_draining() && !second.is_draining() && !proxy.is_draining());
        proxy.start();
        tokio::time::timeout(Duration::from_secs(1), second.started())
            .await
            .unwrap();
        assert!(second.is_draining());
    }
}
