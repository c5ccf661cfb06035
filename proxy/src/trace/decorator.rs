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
    if let Some(value) = headers.remove(HEADER) {
        if let Ok(name) = value.to_str()
            && !name.is_empty()
        {
            rename(notes, name);
            operation = None;
        }
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
