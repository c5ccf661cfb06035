//! An HTTP connection that hyper ends with an error: an h2 connection error the codec detected (a GOAWAY it sent)
//! counts `downstream_cx_protocol_error`, and the header-block floods `http2.header_overflow` too, as Envoy 1.40
//! counts them (checked by running it against the same floods). One log line per cause per second at most.
//! HTTP/1 codec errors are counted where they are answered (`codec_reply`), so not here.
//!
//! h2 tells the cause only in the GOAWAY's debug data (`too_many_resets`, ...), which it sends but leaves out
//! of the error it returns: `h2_frames` finds it in the bytes written.

use crate::log_limit;
use crate::metrics::protocol::Families;
use prometheus_client::metrics::counter::Counter;

/// Why an h2 connection was ended by the codec, as the log line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Streams opened and reset before they were served, past `max_pending_accept_reset_streams` (rapid reset).
    RapidReset,
    /// A header block too long or in too many CONTINUATION frames.
    HeaderOverflow,
    /// Streams this side reset for the client's errors, past `max_local_error_reset_streams`.
    LocalResets,
    /// Empty or tiny DATA frames in a flood.
    SmallDataFrames,
    /// Any other connection error the codec found (PROTOCOL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR, ...).
    Protocol,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::RapidReset => "h2 streams reset before being served (rapid reset)",
            Cause::HeaderOverflow => "h2 header block over the limits (CONTINUATION flood)",
            Cause::LocalResets => "h2 streams refused for the client's errors, too many",
            Cause::SmallDataFrames => "h2 flood of small DATA frames",
            Cause::Protocol => "h2 protocol error",
        }
    }
}

/// The h2 connection error in `error`'s chain that this side detected, if any: its cause and its text (with
/// the debug data of the GOAWAY sent, which h2 leaves out of the error).
pub fn classify(
    error: &(dyn std::error::Error + 'static),
    go_away: Option<Vec<u8>>,
) -> Option<(Cause, String)> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if !(h2.is_go_away() && h2.is_library()) {
                return None;
            }
            let mut text = h2.to_string();
            if let Some(debug) = go_away.filter(|d| !d.is_empty()) {
                text = format!("{text} ({})", String::from_utf8_lossy(&debug));
            }
            let cause = if text.contains("too_many_continuations")
                || text.contains("header_list_way_too_large")
            {
                Cause::HeaderOverflow
            } else if text.contains("too_many_internal_resets") {
                Cause::LocalResets
            } else if text.contains("too_many_resets") {
                Cause::RapidReset
            } else if text.contains("too_many_data_frames") {
                Cause::SmallDataFrames
            } else {
                Cause::Protocol
            };
            return Some((cause, text));
        }
        next = e.source();
    }
    None
}

/// Counts and logs the connection error in `error`, if the codec detected one.
pub fn record(
    error: &(dyn std::error::Error + 'static),
    go_away: Option<Vec<u8>>,
    protocol_error: &Counter,
    families: &Families,
    stat_prefix: &str,
) {
    let Some((cause, text)) = classify(error, go_away) else {
        return;
    };
    protocol_error.inc();
    if cause == Cause::HeaderOverflow {
        families.http2_header_overflow.inc();
    }
    static CAUSES: log_limit::Causes = log_limit::Causes::new();
    if CAUSES.allow(cause.name()) {
        tracing::warn!(
            stat_prefix, error = %text,
            "{}: GOAWAY sent, connection closed (at most one such line a second)",
            cause.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_away(reason: h2::Reason) -> h2::Error {
        h2::Error::from(reason)
    }

    #[test]
    fn only_errors_the_codec_detected_are_classified() {
        // A bare reason (not a GOAWAY this side sent) and an I/O error are not protocol errors of the client.
        assert_eq!(classify(&go_away(h2::Reason::PROTOCOL_ERROR), None), None);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&io, None), None);
    }
}
