//! A stream the connection manager resets instead of answering (an h2 request over `max_headers_count`):
//! the response carries a marker, and hyper, given an error for it, sends RST_STREAM.

use super::local_reply::ResponseBody;
use http::Response;

/// Marks a response that must not be sent: the h2 stream is reset instead (hyper resets a stream whose
/// service fails).
#[derive(Clone, Copy, Debug)]
pub struct ResetStream;

#[derive(Debug, thiserror::Error)]
#[error("stream reset by the connection manager")]
pub struct StreamReset;

/// What hyper gets for a response: the response, or an error that resets its stream.
pub fn reset_or_respond(
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, StreamReset> {
    match response.extensions().get::<ResetStream>() {
        Some(ResetStream) => Err(StreamReset),
        None => Ok(response),
    }
}
