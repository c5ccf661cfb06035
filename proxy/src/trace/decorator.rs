//! A route's `decorator` and the `x-envoy-decorator-operation` header, as Envoy 1.40's connection manager
//! applies them when it traces (checked with Envoy, sampled and not):
//! - the decorator's `operation` names the request's span;
//! - egress: with `propagate` (the default) the request carries `x-envoy-decorator-operation: <operation>` to
//!   the upstream (replacing the client's), and a response's `x-envoy-decorator-operation` renames the span and
//!   is removed;
//! - ingress: a request's non-empty `x-envoy-decorator-operation` renames the span and is removed (an empty one
//!   is removed only); otherwise, with `propagate`, the response carries the decorator's operation.

use crate::access_log::Notes;
use http::{HeaderMap, HeaderName, HeaderValue};
use outrigger_config::model::route::Decorator;

pub const HEADER: HeaderName = HeaderName::from_static("x-envoy-decorator-operation");

/// What is left to do on the response.
pub enum OnResponse {
    /// Ingress: answer with the route's operation.
    Announce(HeaderValue),
    /// Egress: the upstream may name the span.
    Rename(Option<Notes>),
}

/// Applies the decorator to the request (its headers and, when sampled, the span in `notes`).
pub fn on_request(
    egress: bool,
    decorator: Option<&Decorator>,
    headers: &mut HeaderMap,
    notes: Option<&Notes>,
) -> Option<OnResponse> {
    let mut operation = decorator.map(|d| d.operation.as_str());
    if let Some(op) = operation {
        rename(notes, op);
    }
    let propagate = decorator.is_some_and(|d| d.propagate);
    if egress {
        if let Some(op) = operation.filter(|_| propagate)
            && let Ok(value) = HeaderValue::from_str(op)
        {
            headers.insert(HEADER, value);
        }
        return Some(OnResponse::Rename(notes.cloned()));
    }
    // Removed in any case; a non-empty one names the span instead of the route's operation.
    if let Some(value) = headers.remove(HEADER)
        && let Ok(name) = value.to_str()
        && !name.is_empty()
    {
        rename(notes, name);
        operation = None;
    }
    operation
        .filter(|_| propagate)
        .and_then(|op| HeaderValue::from_str(op).ok())
        .map(OnResponse::Announce)
}

/// Applies what is left to the response headers.
pub fn on_response(then: OnResponse, headers: &mut HeaderMap) {
    match then {
        OnResponse::Announce(value) => {
            headers.insert(HEADER, value);
        }
        OnResponse::Rename(notes) => {
            if let Some(value) = headers.remove(HEADER)
                && let Ok(name) = value.to_str()
                && !name.is_empty()
            {
                rename(notes.as_ref(), name);
            }
        }
    }
}

fn rename(notes: Option<&Notes>, name: &str) {
    if let Some(notes) = notes {
        notes.with(|r| {
            if let Some(trace) = r.trace.as_mut() {
                trace.set_operation(name);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decorator(propagate: bool) -> Decorator {
        Decorator {
            operation: "op".into(),
            propagate,
        }
    }

    fn announced(then: Option<OnResponse>) -> Option<String> {
        let mut headers = HeaderMap::new();
        on_response(then?, &mut headers);
        headers
            .get(HEADER)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }

    #[test]
    fn headers_go_where_envoy_sends_them() {
        // Egress: the operation goes upstream unless `propagate: false`; a caller's header is replaced.
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("callers"));
        let then = on_request(true, Some(&decorator(true)), &mut h, None);
        assert_eq!(h[HEADER], "op");
        // An egress response's header is consumed (it names the span), never passed back.
        let mut response = HeaderMap::new();
        response.insert(HEADER, HeaderValue::from_static("theirs"));
        on_response(then.unwrap(), &mut response);
        assert!(!response.contains_key(HEADER));
        let mut h = HeaderMap::new();
        on_request(true, Some(&decorator(false)), &mut h, None);
        assert!(!h.contains_key(HEADER));

        // Ingress: the operation goes back to the client; a caller's header wins and is removed, an empty one is
        // only removed.
        let mut h = HeaderMap::new();
        assert_eq!(
            announced(on_request(false, Some(&decorator(true)), &mut h, None)).as_deref(),
            Some("op")
        );
        assert_eq!(
            announced(on_request(false, Some(&decorator(false)), &mut h, None)),
            None
        );
        h.insert(HEADER, HeaderValue::from_static("callers"));
        assert_eq!(
            announced(on_request(false, Some(&decorator(true)), &mut h, None)),
            None
        );
        assert!(!h.contains_key(HEADER));
        h.insert(HEADER, HeaderValue::from_static(""));
        assert_eq!(
            announced(on_request(false, Some(&decorator(true)), &mut h, None)).as_deref(),
            Some("op")
        );
        assert!(!h.contains_key(HEADER));
        // No decorator, no header: nothing to do on the response.
        assert!(on_request(false, None, &mut HeaderMap::new(), None).is_none());
    }
}
