//! `with_request_body`: the request's body read up to `max_request_bytes` for the check, then sent on whole.
//! As in Envoy 1.40: a body that ends within the limit is sent complete; past it, the check gets the first
//! `max_request_bytes` bytes when `allow_partial_message` is set (and `x-envoy-auth-partial-body: true`), else
//! the client gets 413 and no check is made.

use crate::upstream::{BoxError, UpstreamBody};
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use outrigger_config::model::ext_authz::BufferSettings;

/// What the check sees of the body.
pub struct Buffered {
    pub bytes: Bytes,
    /// More was held than `max_request_bytes`: `bytes` is the start of the body.
    pub partial: bool,
    /// How much was held (Envoy's `size`: more than `bytes` when `partial`).
    pub held: usize,
}

/// Reads `body` as far as `settings` say; the check's view and the body to send on, or `None` when the body
/// is over the limit without `allow_partial_message` (or the client went away).
pub async fn buffer(
    mut body: UpstreamBody,
    settings: BufferSettings,
) -> Option<(Buffered, UpstreamBody)> {
    let max = settings.max_request_bytes as usize;
    let mut held: Vec<Frame<Bytes>> = Vec::new();
    let mut data = BytesMut::new();
    loop {
        if data.len() >= max && settings.allow_partial_message {
            break;
        }
        match body.frame().await {
            None => break,
            Some(Err(_)) => return None,
            Some(Ok(frame)) => {
                if let Some(chunk) = frame.data_ref() {
                    data.extend_from_slice(chunk);
                    if data.len() > max && !settings.allow_partial_message {
                        return None;
                    }
                }
                held.push(frame);
            }
        }
    }
    let data = data.freeze();
    let partial = data.len() > max;
    let seen = Buffered {
        bytes: data.slice(..data.len().min(max)),
        partial,
        held: data.len(),
    };
    let replay = futures_util::stream::iter(held.into_iter().map(Ok::<_, BoxError>));
    use futures_util::StreamExt;
    let rest: UpstreamBody = BodyExt::boxed(StreamBody::new(replay.chain(BodyStream::new(body))));
    Some((seen, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> UpstreamBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
    }

    fn settings(max: u32, partial: bool) -> BufferSettings {
        BufferSettings {
            max_request_bytes: max,
            allow_partial_message: partial,
            pack_as_bytes: false,
        }
    }

    async fn whole(body: UpstreamBody) -> Bytes {
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    /// Within the limit: the whole body, not partial; past it: refused, or its start when partial messages are
    /// allowed (with what was held as the size); the body sent on is always whole.
    #[tokio::test]
    async fn bodies_are_held_up_to_the_limit() {
        let Some((seen, rest)) = buffer(chunks(&["hel", "lo"]), settings(10, false)).await else {
            panic!("a body within the limit is checked");
        };
        assert_eq!(
            (&seen.bytes[..], seen.partial, seen.held),
            (&b"hello"[..], false, 5)
        );
        assert_eq!(whole(rest).await, "hello");
        assert!(
            buffer(chunks(&["0123456789", "abc"]), settings(10, false))
                .await
                .is_none()
        );
        let Some((seen, rest)) =
            buffer(chunks(&["01234567", "89ab", "cd"]), settings(10, true)).await
        else {
            panic!("a partial body is checked");
        };
        assert_eq!(
            (&seen.bytes[..], seen.partial, seen.held),
            (&b"0123456789"[..], true, 12)
        );
        assert_eq!(whole(rest).await, "0123456789abcd");
    }
}
