//! After a 101 the stream is the tunnel: Envoy keeps timing it, and a tunnel with no byte either way for the
//! idle timeout is reset. The tunnel is copied by the router, outside this layer, over the connection's own
//! IO, so the watch is on that IO: a task that wakes at each possible deadline and resets the connection
//! (`ConnectionState::reset`) when nothing moved. It holds the connection's state weakly and ends with it.

use super::Clock;
use std::sync::{Arc, Weak};
use tokio::time::{Instant, sleep_until};

pub fn watch(clock: Arc<Clock>) {
    let state = Arc::downgrade(&clock.state);
    let idle = clock.idle;
    let counter = clock.idle_timeouts.clone();
    drop(clock);
    tokio::spawn(async move {
        let mut deadline = Instant::now() + idle;
        loop {
            sleep_until(deadline).await;
            let Some(state) = Weak::upgrade(&state) else {
                return;
            };
            let last = state
                .last_io()
                .map_or(deadline - idle, |at| at.max(deadline - idle));
            if Instant::now() < last + idle {
                deadline = last + idle;
                continue;
            }
            counter.inc();
            state.reset();
            return;
        }
    });
}
