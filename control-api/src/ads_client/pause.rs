//! Envoy's CDS pause: once its initial clusters are in place, Envoy sends no CDS request (its ACK included) while
//! a cluster warms, and sends it when none does. A control plane that waits for the ACK of a new cluster before
//! sending the routes that use it (make before break) relies on it. The sink says when clusters warm
//! ([`super::Sink::cds_pause`]); a stream holds its CDS requests meanwhile.

use tokio::sync::watch;

/// The requests of one stream held back while CDS is paused.
pub struct CdsPause<R> {
    paused: Option<watch::Receiver<bool>>,
    held: Vec<R>,
    /// State of the world: a later request supersedes the ones before (it carries the whole state), so only
    /// the last is kept. Delta: each carries its own changes and ACK, so all are kept, in order.
    latest_only: bool,
}

impl<R> CdsPause<R> {
    pub fn new(paused: Option<watch::Receiver<bool>>, latest_only: bool) -> Self {
        Self {
            paused,
            held: Vec::new(),
            latest_only,
        }
    }

    fn is_paused(&self) -> bool {
        self.paused.as_ref().is_some_and(|p| *p.borrow())
    }

    /// What to send now: the requests held before, once CDS is no longer paused, then `request` unless it is a
    /// CDS one while CDS is paused (then it is held).
    pub fn pass(&mut self, is_cds: bool, request: R) -> Vec<R> {
        let paused = self.is_paused();
        let mut out = if paused {
            Vec::new()
        } else {
            std::mem::take(&mut self.held)
        };
        if is_cds && paused {
            if self.latest_only {
                self.held.clear();
            }
            self.held.push(request);
        } else {
            out.push(request);
        }
        out
    }

    /// The held requests, when CDS is no longer paused.
    pub fn released(&mut self) -> Vec<R> {
        if self.is_paused() {
            Vec::new()
        } else {
            std::mem::take(&mut self.held)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cds_requests_wait_while_paused_and_go_first_once_resumed() {
        let (pause, paused) = watch::channel(false);
        let mut sotw = CdsPause::new(Some(paused.clone()), true);
        let mut delta = CdsPause::new(Some(paused), false);
        assert_eq!(sotw.pass(true, "cds 1"), ["cds 1"]);
        pause.send(true).unwrap();
        assert!(sotw.pass(true, "cds 2").is_empty());
        assert!(sotw.pass(true, "cds 3").is_empty());
        assert!(delta.pass(true, "cds 2").is_empty());
        assert!(delta.pass(true, "cds 3").is_empty());
        // Other types are not held.
        assert_eq!(sotw.pass(false, "eds 1"), ["eds 1"]);
        assert!(sotw.released().is_empty());
        pause.send(false).unwrap();
        // The held CDS request goes before the next one.
        assert_eq!(sotw.pass(false, "eds 2"), ["cds 3", "eds 2"]);
        assert_eq!(delta.released(), ["cds 2", "cds 3"]);
        assert!(delta.released().is_empty());
    }

    #[test]
    fn without_a_pause_nothing_is_held() {
        let mut stream = CdsPause::new(None, true);
        assert_eq!(stream.pass(true, 1), [1]);
        assert!(stream.released().is_empty());
    }
}
