//! Draining: one trigger, many watchers. Listeners stop accepting and connections wind down when it fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Drain {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            receiver,
            connections: Arc::default(),
        }
    }
}

impl Drain {
    pub fn start(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the drain has started.
    pub async fn started(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|draining| *draining).await;
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
