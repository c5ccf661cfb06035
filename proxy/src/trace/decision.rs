//! The trace decision, made once per request as Envoy makes it (`envoy.request_id.uuid` with its defaults
//! `pack_trace_reason` and `use_request_id_for_trace_sampling`): the reason lives in the `x-request-id` UUID's
//! version nibble (index 14: `4` none, `9` sampled, `a` forced by the service, `b` forced by the client), so
//! every hop that reads the same id decides the same way, and the random draw is the id's first 8 hex digits
//! modulo 10,000.

use http::HeaderMap;
use http::header::HeaderValue;
use outrigger_config::model::tracing::Tracing;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NotTraceable,
    Sampling,
    ServiceForced,
    ClientForced,
}

impl Reason {
    /// Its place in `stats::DECISIONS`.
    pub fn index(self) -> usize {
        match self {
            Reason::NotTraceable => 0,
            Reason::Sampling => 1,
            Reason::ServiceForced => 2,
            Reason::ClientForced => 3,
        }
    }

    pub fn traced(self) -> bool {
        self != Reason::NotTraceable
    }

    fn nibble(self) -> u8 {
        match self {
            Reason::NotTraceable => b'4',
            Reason::Sampling => b'9',
            Reason::ServiceForced => b'a',
            Reason::ClientForced => b'b',
        }
    }
}

const NIBBLE: usize = 14;

fn uuid_like(id: &str) -> bool {
    id.len() == 36
}

/// The reason the id already carries.
fn reason_in(id: &str) -> Reason {
    if !uuid_like(id) {
        return Reason::NotTraceable;
    }
    match id.as_bytes().get(NIBBLE) {
        Some(b'9') => Reason::Sampling,
        Some(b'a') => Reason::ServiceForced,
        Some(b'b') => Reason::ClientForced,
        _ => Reason::NotTraceable,
    }
}

/// The id's first 8 hex digits: the stable draw.
fn draw(id: &str) -> Option<u64> {
    u64::from_str_radix(id.get(..8)?, 16).ok()
}

/// Decides for this request and writes the reason into its `x-request-id` (which then travels upstream).
/// `force_trace` is whether `x-envoy-force-trace` survived the internal-header cleanup (it never does in
/// Envoy 1.40 without `internal_address_config`: every request is external).
/// `generated`: the id the connection manager has just written into `x-request-id`, if it made one (a fresh
/// version 4 UUID carries no reason: its draw is read from its bytes instead of parsing the header back).
pub fn decide(config: &Tracing, headers: &mut HeaderMap, generated: Option<uuid::Uuid>) -> Reason {
    let (value, carried) = match generated {
        Some(id) => (u64::from(first_digits(id)), Reason::NotTraceable),
        None => {
            let Some(id) = headers.get(X_REQUEST_ID).and_then(|v| v.to_str().ok()) else {
                return Reason::NotTraceable;
            };
            // Envoy skips the decision for an id it cannot read a number from (and the request is not traced).
            let Some(value) = draw(id) else {
                return Reason::NotTraceable;
            };
            (value, reason_in(id))
        }
    };
    let result = (value % 10_000) as u32;
    let mut reason = carried;
    if reason == Reason::NotTraceable {
        if headers.contains_key(X_CLIENT_TRACE_ID)
            && fastrand::u32(..10_000) < config.client_sampling
        {
            reason = Reason::ClientForced;
        } else if headers.contains_key(X_ENVOY_FORCE_TRACE) {
            reason = Reason::ServiceForced;
        } else if result < config.random_sampling {
            reason = Reason::Sampling;
        }
    }
    // As Envoy: the id is rewritten whenever a reason is set, and a reason is set only when the decision
    // differs from the one the id carries, or overall sampling vetoes a trace (an id whose nibble carries no
    // known reason then gets `4`; otherwise it stays as it came).
    let decided = reason != carried;
    if reason != Reason::NotTraceable && result >= config.overall_sampling {
        reason = Reason::NotTraceable;
    }
    if decided || reason != carried {
        write_reason(headers, reason);
    }
    reason
}

/// The id's first 8 hex digits as a number (its first four bytes).
fn first_digits(id: uuid::Uuid) -> u32 {
    let [a, b, c, d, ..] = *id.as_bytes();
    u32::from_be_bytes([a, b, c, d])
}

/// Rewrites `x-request-id`'s reason nibble (a UUID-shaped id only, as Envoy does).
fn write_reason(headers: &mut HeaderMap, reason: Reason) {
    let Some(id) = headers.get(X_REQUEST_ID).map(|v| v.as_bytes()) else {
        return;
    };
    if id.len() != 36 {
        return;
    }
    let mut bytes = id.to_vec();
    if let Some(b) = bytes.get_mut(NIBBLE) {
        *b = reason.nibble();
    }
    if let Ok(value) = HeaderValue::from_bytes(&bytes) {
        headers.insert(X_REQUEST_ID, value);
    }
}

use crate::http::headers::X_REQUEST_ID;
const X_CLIENT_TRACE_ID: http::HeaderName = http::HeaderName::from_static("x-client-trace-id");
const X_ENVOY_FORCE_TRACE: http::HeaderName = http::HeaderName::from_static("x-envoy-force-trace");

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::model::tracing::{
        CollectorTarget, OpenTelemetry, OtlpCollector, Provider,
    };

    fn config(random: u32) -> Tracing {
        Tracing {
            provider: Provider::OpenTelemetry(OpenTelemetry {
                service_name: "s".into(),
                collector: OtlpCollector::Grpc {
                    target: CollectorTarget::Cluster("c".into()),
                    timeout: std::time::Duration::from_secs(1),
                    headers: vec![],
                },
                environment_resource: false,
            }),
            client_sampling: 10_000,
            random_sampling: random,
            overall_sampling: 10_000,
            max_path_tag_length: 256,
            custom_tags: vec![],
            spawn_upstream_span: false,
            start_child_span: false,
        }
    }

    fn with_id(id: &'static str, extra: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static(id));
        for name in extra {
            h.insert(*name, HeaderValue::from_static("1"));
        }
        h
    }

    #[test]
    fn the_reason_is_packed_into_the_request_id_like_envoy() {
        // 0x0000270f = 9999: sampled at 100 %, not at 99.99 %.
        let mut h = with_id("0000270f-0000-4000-8000-000000000000", &[]);
        assert_eq!(decide(&config(10_000), &mut h, None), Reason::Sampling);
        assert_eq!(h["x-request-id"], "0000270f-0000-9000-8000-000000000000");
        let mut h = with_id("0000270f-0000-4000-8000-000000000000", &[]);
        assert_eq!(decide(&config(9_999), &mut h, None), Reason::NotTraceable);
        assert_eq!(h["x-request-id"], "0000270f-0000-4000-8000-000000000000");
        // A reason already in the id is kept (the hop before decided).
        let mut h = with_id("0000270f-0000-9000-8000-000000000000", &[]);
        assert_eq!(decide(&config(0), &mut h, None), Reason::Sampling);
        // x-client-trace-id forces (client_sampling 100 %), then x-envoy-force-trace.
        let mut h = with_id(
            "00000001-0000-4000-8000-000000000000",
            &["x-client-trace-id"],
        );
        assert_eq!(decide(&config(0), &mut h, None), Reason::ClientForced);
        assert_eq!(h["x-request-id"], "00000001-0000-b000-8000-000000000000");
        let mut h = with_id(
            "00000001-0000-4000-8000-000000000000",
            &["x-envoy-force-trace"],
        );
        assert_eq!(decide(&config(0), &mut h, None), Reason::ServiceForced);
        assert_eq!(h["x-request-id"], "00000001-0000-a000-8000-000000000000");
        // client_sampling 0 %: x-client-trace-id forces nothing.
        let mut c = config(0);
        c.client_sampling = 0;
        let mut h = with_id(
            "00000001-0000-4000-8000-000000000001",
            &["x-client-trace-id"],
        );
        assert_eq!(decide(&c, &mut h, None), Reason::NotTraceable);
        // overall_sampling vetoes even a forced trace.
        let mut c = config(10_000);
        c.overall_sampling = 0;
        let mut h = with_id(
            "00000001-0000-4000-8000-000000000000",
            &["x-envoy-force-trace"],
        );
        assert_eq!(decide(&c, &mut h, None), Reason::NotTraceable);
        // An id that is not a number is not traced.
        let mut h = with_id("not-a-uuid", &[]);
        assert_eq!(decide(&config(10_000), &mut h, None), Reason::NotTraceable);
    }

    #[test]
    fn a_generated_id_decides_as_the_same_id_read_from_its_header() {
        for (i, sampling) in [0, 1, 100, 5_000, 9_999, 10_000]
            .into_iter()
            .cycle()
            .take(600)
            .enumerate()
        {
            let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
            let text = id.hyphenated().to_string();
            let client = if i % 7 == 0 {
                &["x-client-trace-id"][..]
            } else {
                &[]
            };
            let mut read = HeaderMap::new();
            read.insert("x-request-id", HeaderValue::from_str(&text).unwrap());
            let mut given = read.clone();
            for name in client {
                read.insert(*name, HeaderValue::from_static("1"));
                given.insert(*name, HeaderValue::from_static("1"));
            }
            let c = config(sampling);
            assert_eq!(
                decide(&c, &mut given, Some(id)),
                decide(&c, &mut read, None),
                "{text}"
            );
            assert_eq!(given["x-request-id"], read["x-request-id"], "{text}");
        }
    }

    #[test]
    fn an_id_whose_reason_does_not_change_is_left_as_it_came() {
        // Envoy rewrites the reason only when its decision differs from the one the id carries (an unknown
        // nibble carries none).
        let mut h = with_id("00000001-0000-1000-8000-000000000000", &[]);
        assert_eq!(decide(&config(0), &mut h, None), Reason::NotTraceable);
        assert_eq!(h["x-request-id"], "00000001-0000-1000-8000-000000000000");
        // Sampled, then vetoed by overall sampling: Envoy sets both reasons in turn, the id ends with `4`.
        let mut c = config(10_000);
        c.overall_sampling = 0;
        let mut h = with_id("00000001-0000-1000-8000-000000000000", &[]);
        assert_eq!(decide(&c, &mut h, None), Reason::NotTraceable);
        assert_eq!(h["x-request-id"], "00000001-0000-4000-8000-000000000000");
    }
}
