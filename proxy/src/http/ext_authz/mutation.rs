//! The changes an allowed check makes to the request (headers set, appended, removed; query parameters) and to
//! the response, with the `HeaderValueOption` semantics Envoy 1.40 gives the gRPC service's answer.

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;

/// How one header of the service's answer lands. Envoy 1.40 reads only the deprecated `append` here (checked
/// with real Envoy: `append_action` ADD_IF_ABSENT and OVERWRITE_IF_EXISTS both set the header).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// `append: true`: joined to an existing value with a comma, else added.
    AppendToValue,
    /// Anything else: the header is set, replacing any value it had.
    OverwriteOrAdd,
}

/// One header change.
#[derive(Clone, Debug)]
pub struct HeaderOp {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub action: Action,
}

impl HeaderOp {
    /// From the service's `HeaderValueOption`; `None` for a name or value HTTP cannot carry. Envoy still
    /// reads the deprecated `append`, so do we.
    #[allow(deprecated)]
    pub(super) fn from_proto(option: &HeaderValueOption) -> Option<HeaderOp> {
        let header = option.header.as_ref()?;
        let name = HeaderName::from_bytes(header.key.to_ascii_lowercase().as_bytes()).ok()?;
        let value = if header.raw_value.is_empty() {
            HeaderValue::from_str(&header.value).ok()?
        } else {
            HeaderValue::from_bytes(&header.raw_value).ok()?
        };
        let action = match &option.append {
            Some(append) if append.value => Action::AppendToValue,
            _ => Action::OverwriteOrAdd,
        };
        Some(HeaderOp {
            name,
            value,
            action,
        })
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        let joined = match self.action {
            Action::AppendToValue => headers.get(&self.name).and_then(|old| {
                let mut bytes = old.as_bytes().to_vec();
                bytes.push(b',');
                bytes.extend_from_slice(self.value.as_bytes());
                HeaderValue::from_bytes(&bytes).ok()
            }),
            Action::OverwriteOrAdd => None,
        };
        headers.insert(
            self.name.clone(),
            joined.unwrap_or_else(|| self.value.clone()),
        );
    }
}

/// What an allowed check changes on the request.
#[derive(Default)]
pub struct RequestChanges {
    pub headers: Vec<HeaderOp>,
    pub remove: Vec<HeaderName>,
    pub query_set: Vec<(String, String)>,
    pub query_remove: Vec<String>,
}

impl RequestChanges {
    pub fn apply(&self, parts: &mut Parts) {
        for op in &self.headers {
            op.apply(&mut parts.headers);
        }
        for name in &self.remove {
            // Envoy never removes the host (nor a pseudo-header, which never gets here as a name).
            if name != http::header::HOST {
                parts.headers.remove(name);
            }
        }
        if !self.query_set.is_empty() || !self.query_remove.is_empty() {
            self.rewrite_query(parts);
        }
    }

    /// Envoy parses the query into a map ordered by name, changes it and writes it back.
    fn rewrite_query(&self, parts: &mut Parts) {
        let (path, query) = match parts.uri.path_and_query() {
            Some(pq) => (pq.path().to_string(), pq.query().unwrap_or("").to_string()),
            None => return,
        };
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.entry(k.to_string()).or_default().push(v.to_string());
        }
        for key in &self.query_remove {
            params.remove(key);
        }
        for (key, value) in &self.query_set {
            params.insert(key.clone(), vec![value.clone()]);
        }
        let query: Vec<String> = params
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}")))
            .collect();
        let new = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        if let Ok(pq) = http::uri::PathAndQuery::try_from(new.as_str()) {
            uri.path_and_query = Some(pq);
        }
        if let Ok(rebuilt) = http::Uri::from_parts(uri) {
            parts.uri = rebuilt;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        let (parts, ()) = http::Request::builder()
            .uri(uri)
            .header("host", "a")
            .header("x-app", "orig")
            .body(())
            .unwrap_or_default()
            .into_parts();
        parts
    }

    fn op(name: &'static str, value: &'static str, action: Action) -> HeaderOp {
        HeaderOp {
            name: HeaderName::from_static(name),
            value: HeaderValue::from_static(value),
            action,
        }
    }

    /// `append: true` joins with a comma or adds; anything else sets; the host is never removed; the query is
    /// written back ordered by name, with the set and removed parameters.
    #[test]
    fn changes_apply_as_envoy_applies_them() {
        let mut p = parts("/q?keep=2&drop=1&b=3");
        let changes = RequestChanges {
            headers: vec![
                op("x-app", "added", Action::AppendToValue),
                op("x-new", "n", Action::AppendToValue),
                op("x-set", "s", Action::OverwriteOrAdd),
            ],
            remove: vec![http::header::HOST, HeaderName::from_static("x-set")],
            query_set: vec![("added".into(), "1".into())],
            query_remove: vec!["drop".into()],
        };
        changes.apply(&mut p);
        let header = |n: &str| p.headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(header("x-app"), Some("orig,added"));
        assert_eq!(header("x-new"), Some("n"));
        assert_eq!(header("x-set"), None);
        assert_eq!(header("host"), Some("a"));
        assert_eq!(p.uri.to_string(), "/q?added=1&b=3&keep=2");
    }
}
