//! The listener's own access log (`Listener.access_log`): a line for every connection when it closes, as Envoy
//! writes it. What the connection's filters learnt goes in: `tcp_proxy` fills the same record (upstream host,
//! cluster, bytes, flags), a connection no filter chain takes is `NR` with `filter_chain_not_found`, one the
//! network RBAC filter closes names the policy in `%CONNECTION_TERMINATION_DETAILS%`.

use crate::access_log::record::Record;
use crate::access_log::{Loggers, Notes};
use outrigger_config::model::Listener;
use std::net::SocketAddr;

pub struct ListenerLog {
    notes: Notes,
    loggers: Loggers,
}

impl ListenerLog {
    /// `None` when the listener has no access log (nothing is recorded then).
    pub fn start(listener: &Listener, peer: SocketAddr, destination: SocketAddr) -> Option<Self> {
        if listener.access_log.is_empty() {
            return None;
        }
        let notes = Notes::start(Record {
            start: Some(std::time::SystemTime::now()),
            downstream_remote: Some(peer),
            downstream_local: Some(destination),
            // Envoy writes 0 attempts for a connection no upstream was tried for.
            attempts: Some(0),
            ..Record::default()
        });
        Some(ListenerLog {
            notes,
            loggers: Loggers::new(&listener.access_log),
        })
    }

    pub fn notes(&self) -> &Notes {
        &self.notes
    }

    /// No filter chain took the connection.
    pub fn no_filter_chain(&self) {
        self.notes.with(|r| {
            r.flags.add("NR");
            r.response_code_details = Some("filter_chain_not_found".into());
        });
    }

    /// The network RBAC filter closed the connection (`policy`: the DENY policy that matched, if any).
    pub fn denied(&self, policy: Option<&str>) {
        let details = format!(
            "rbac_access_denied_matched_policy[{}]",
            policy.unwrap_or("none")
        );
        self.notes.with(|r| r.termination_details = Some(details));
    }
}

impl Drop for ListenerLog {
    fn drop(&mut self) {
        let elapsed = self.notes.elapsed();
        let mut record = Record::default();
        self.notes.with(|r| {
            r.duration = Some(elapsed);
            record = std::mem::take(r);
        });
        self.loggers.log(&record);
    }
}
