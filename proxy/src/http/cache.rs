//! `envoy.filters.http.cache` over the in-memory store, as Envoy 1.40 runs it (checked with real Envoy,
//! `tests/envoy_http_filters/cache.rs`):
//! - only a `GET` or `HEAD` without a body, `authorization`, `if-none-match`, `if-modified-since` or `if-range`
//!   uses the cache; the key is the scheme, host, path and query (`key_creator_params` is not implemented in
//!   Envoy either);
//! - a stored response that is fresh for the request (`freshness.rs`) answers it with an `age` header: whole,
//!   as a single byte range (206), or 416 for a range past its end (`range.rs`); a `HEAD` gets its headers;
//! - one that is not is validated upstream: the request goes on with `if-none-match` (its `etag`) and
//!   `if-modified-since` (its `last-modified` when that is a date, else its `date`, even empty); a 304 answers
//!   with the stored response under the 304's headers (no `age`), and refreshes the stored headers unless the 304
//!   names another `etag`; any other answer goes to the client and may replace the entry;
//! - a response is stored when the request allows it (no `no-store`, not `HEAD`) and `freshness.rs` finds it
//!   storable, its body streamed to the client meanwhile (`tee.rs`); one that varies on allowed headers is
//!   stored per their request values.
//!
//! Envoy sends such a request (miss or validation) upstream through its own client rather than the rest of the
//! filter chain and the router: the route's `request_headers_to_add`/`response_headers_to_add` (at every level)
//! and `x-envoy-expected-rq-timeout-ms` are left out, which `CacheUpstream` tells the router here. Still
//! different: here the filters after this one run (in the configurations Envoy documents, the router alone), and
//! the route's timeout, retries and rewrites still apply, where Envoy's client has none.
//! Envoy 1.40 crashes when a stored response varies (`vary` on an allowed header, then the same request again),
//! so only the refusal of other `vary` values is compared with it.

mod freshness;
mod range;
mod store;
mod tee;
#[cfg(test)]
mod tests;

use super::filter_service::{BoxFuture, Next};
use super::local_reply::{self, ResponseBody};
use crate::upstream::UpstreamBody;
use bytes::Bytes;
use freshness::{RequestCacheControl, has_vary, vary_identifier, vary_values};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use outrigger_config::model::cache::Cache;
use range::Part;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use store::{Entry, Slot};

/// On a request the filter sends upstream (a miss or a validation): the router leaves out the route's header
/// changes and `x-envoy-expected-rq-timeout-ms`, as Envoy's cache filter sends such requests through its own
/// client rather than the router (checked with real Envoy 1.40).
#[derive(Clone, Copy, Debug)]
pub struct CacheUpstream;

/// The filter on one connection.
#[derive(Clone)]
pub struct CacheFilter<S> {
    inner: S,
    config: Arc<Cache>,
}

impl<S> CacheFilter<S> {
    pub fn new(inner: S, config: &Cache) -> Self {
        Self {
            inner,
            config: Arc::new(config.clone()),
        }
    }
}

/// True when `allowed_vary_headers` lets a response vary on `name`.
fn vary_allowed(config: &Cache, name: &str) -> bool {
    config.allowed_vary_headers.iter().any(|m| m.matches(name))
}

/// The request's scheme as Envoy keys it: the URI's (HTTP/2), else what the connection manager set.
fn scheme(parts: &http::request::Parts) -> String {
    parts
        .uri
        .scheme_str()
        .or_else(|| {
            parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("http")
        .to_ascii_lowercase()
}

/// The stored response for this key and request, following a `vary` to the request's variant.
fn lookup(key: &str, request: &HeaderMap, config: &Cache) -> Option<Arc<Entry>> {
    let store = store::shared().lock().ok()?;
    match store.get(key)? {
        Slot::Response(entry) => Some(entry),
        Slot::Varies(names) => {
            let id = vary_identifier(&names, request, |n| vary_allowed(config, n))?;
            match store.get(&format!("{key}\n{id}"))? {
                Slot::Response(entry) => Some(entry),
                Slot::Varies(_) => None,
            }
        }
    }
}

/// Stores a whole response under its key (or its variant's).
fn insert(key: &str, request: &HeaderMap, config: &Cache, entry: Entry) {
    let Ok(mut store) = store::shared().lock() else {
        return;
    };
    if !has_vary(&entry.headers) {
        store.insert(key.to_string(), Slot::Response(Arc::new(entry)));
        return;
    }
    let mut names = vary_values(&entry.headers);
    let Some(id) = vary_identifier(&names, request, |n| vary_allowed(config, n)) else {
        return;
    };
    store.insert(format!("{key}\n{id}"), Slot::Response(Arc::new(entry)));
    if !store.contains(key) {
        names.sort_unstable();
        names.dedup();
        store.insert(key.to_string(), Slot::Varies(names));
    }
}

fn body_of(entry: &Entry, bytes: Bytes, with_trailers: bool) -> ResponseBody {
    match (&entry.trailers, with_trailers) {
        (Some(trailers), true) => http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, crate::upstream::BoxError>(http_body::Frame::data(bytes)),
            Ok(http_body::Frame::trailers(trailers.clone())),
        ]))
        .boxed(),
        _ => local_reply::text(bytes),
    }
}

/// Marks a response the cache answered, as Envoy flags it (`RFCF`) for logs.
fn from_cache(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let mut flags = response
        .extensions()
        .get::<crate::access_log::record::Flags>()
        .copied()
        .unwrap_or_default();
    flags.add("RFCF");
    response.extensions_mut().insert(flags);
    response
        .extensions_mut()
        .insert(crate::access_log::record::Details(
            "cache.response_from_cache_filter",
        ));
    local_reply::from_filter(response)
}

/// A fresh stored response answering a request: its `age`, the range asked for, headers alone for `HEAD`.
fn serve(entry: &Entry, age: i64, head: bool, range: Option<&str>) -> Response<ResponseBody> {
    let mut headers = entry.headers.clone();
    headers.insert(http::header::AGE, HeaderValue::from(age));
    let length = entry.body.len() as u64;
    let (status, body) = match range::part(range, length) {
        Part::Whole => (entry.status, body_of(entry, entry.body.clone(), true)),
        Part::Range(start, end) => {
            headers.append(
                http::header::CONTENT_RANGE,
                content_range(&format!("bytes {start}-{}/{length}", end - 1)),
            );
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(end - start));
            let bytes = entry.body.slice(start as usize..end as usize);
            (StatusCode::PARTIAL_CONTENT, local_reply::text(bytes))
        }
        Part::Unsatisfiable => {
            headers.append(
                http::header::CONTENT_RANGE,
                content_range(&format!("bytes */{length}")),
            );
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
            (StatusCode::RANGE_NOT_SATISFIABLE, local_reply::empty())
        }
    };
    let mut response = Response::new(if head { local_reply::empty() } else { body });
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    from_cache(response)
}

/// A `content-range` value (digits and ASCII only, so it always converts).
fn content_range(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The conditional headers that validate a stored response upstream.
fn validation_headers(request: &mut HeaderMap, stored: &HeaderMap) {
    if let Some(etag) = stored.get(http::header::ETAG) {
        request.insert(http::header::IF_NONE_MATCH, etag.clone());
    }
    let last_modified = stored.get(http::header::LAST_MODIFIED);
    let since = if freshness::is_http_time(last_modified) {
        last_modified.cloned()
    } else {
        stored.get(http::header::DATE).cloned()
    };
    request.insert(
        http::header::IF_MODIFIED_SINCE,
        since.unwrap_or_else(|| HeaderValue::from_static("")),
    );
}

/// What the response side needs of a request that used the cache.
struct Pending {
    config: Arc<Cache>,
    key: String,
    /// The request's headers as the client sent them (a variant is keyed by them).
    request: HeaderMap,
    allows_inserts: bool,
    head: bool,
    /// The stored response being validated.
    validating: Option<Arc<Entry>>,
}

impl Pending {
    fn respond(self, response: Response<ResponseBody>) -> Response<ResponseBody> {
        if let Some(entry) = &self.validating
            && response.status() == StatusCode::NOT_MODIFIED
        {
            return self.validated(entry, response);
        }
        let storable = self.allows_inserts
            && !self.head
            && freshness::response_is_cacheable(response.status(), response.headers(), |n| {
                vary_allowed(&self.config, n)
            });
        if !storable {
            return response;
        }
        let (parts, body) = response.into_parts();
        let response_time = SystemTime::now();
        let (status, headers) = (parts.status, parts.headers.clone());
        let commit: tee::Commit = Box::new(move |body, trailers| {
            let entry = Entry {
                status,
                headers,
                body,
                trailers,
                response_time,
            };
            insert(&self.key, &self.request, &self.config, entry);
        });
        Response::from_parts(parts, tee::Tee::new(body, commit).boxed())
    }

    /// A 304 for a stored response: the stored one, under the 304's headers and the stored ones it lacks.
    fn validated(&self, entry: &Entry, response: Response<ResponseBody>) -> Response<ResponseBody> {
        let (mut parts, _) = response.into_parts();
        let etag = parts.headers.get(http::header::ETAG);
        let refresh = etag.is_none() || entry.headers.get(http::header::ETAG) == etag;
        parts.status = entry.status;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        // Only a header's first stored value is added, as Envoy's merge does.
        for name in entry.headers.keys() {
            if name != http::header::AGE
                && !parts.headers.contains_key(name)
                && let Some(value) = entry.headers.get(name)
            {
                parts.headers.insert(name.clone(), value.clone());
            }
        }
        if refresh && let Ok(mut store) = store::shared().lock() {
            store.update_headers(&self.key, &parts.headers, SystemTime::now());
        }
        let body = if self.head {
            local_reply::empty()
        } else {
            body_of(entry, entry.body.clone(), true)
        };
        from_cache(Response::from_parts(parts, body))
    }
}

impl<S: Next> tower_service::Service<Request<UpstreamBody>> for CacheFilter<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let host = super::headers::authority(&parts).map(str::to_string);
        let scheme = scheme(&parts);
        let has_body = !http_body::Body::is_end_stream(&body);
        let usable = !self.config.disabled
            && freshness::request_is_cacheable(
                &parts.method,
                &parts.headers,
                host.is_some(),
                &scheme,
                has_body,
            );
        if !usable {
            return Box::pin(self.inner.call(Request::from_parts(parts, body)));
        }
        let request_cc = RequestCacheControl::of(
            &parts.headers,
            self.config.ignore_request_cache_control_header,
        );
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let key = format!("{scheme}\n{}\n{path}", host.unwrap_or_default());
        let head = parts.method == Method::HEAD;
        let mut validating = None;
        if let Some(entry) = lookup(&key, &parts.headers, &self.config) {
            let age = freshness::age(&entry.headers, entry.response_time, SystemTime::now());
            if !freshness::requires_validation(&entry.headers, age, &request_cc) {
                let range = parts
                    .headers
                    .get(http::header::RANGE)
                    .and_then(|v| v.to_str().ok());
                let response = serve(&entry, age, head, range);
                return Box::pin(std::future::ready(Ok(response)));
            }
            validating = Some(entry);
        }
        let pending = Pending {
            config: self.config.clone(),
            key,
            request: parts.headers.clone(),
            allows_inserts: !request_cc.no_store,
            head,
            validating,
        };
        if let Some(entry) = &pending.validating {
            validation_headers(&mut parts.headers, &entry.headers);
        }
        parts.extensions.insert(CacheUpstream);
        use futures_util::FutureExt;
        Box::pin(
            self.inner
                .call(Request::from_parts(parts, body))
                .map(move |result| {
                    let Ok(response) = result;
                    Ok(pending.respond(response))
                }),
        )
    }
}
