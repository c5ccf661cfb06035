//! The request's hash for consistent-hash clusters (`RouteAction.hash_policy`), computed as Envoy 1.40 computes it:
//! each policy that finds its input gives `xxHash64(value)`, and the hash so far is rotated left by one bit and
//! XORed with it; a `terminal` policy that leaves a hash stops the list. No input found: no hash (the balancer
//! then draws a random one).

use http::request::Parts;
use outrigger_config::model::route::{HashInput, HashPolicy};
use std::net::SocketAddr;
use xxhash_rust::xxh64::xxh64;

pub fn request_hash(policies: &[HashPolicy], parts: &Parts, peer: SocketAddr) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        if let Some(new) = input_hash(&policy.input, parts, peer) {
            let old = hash.map_or(0, |h| h.rotate_left(1));
            hash = Some(old ^ new);
        }
        if policy.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

fn input_hash(input: &HashInput, parts: &Parts, peer: SocketAddr) -> Option<u64> {
    match input {
        HashInput::Header(name) => {
            let mut values: Vec<&[u8]> = header_values(parts, name);
            match values.len() {
                0 => None,
                1 => Some(xxh64(values[0], 0)),
                // Several values: sorted, then each hashed with the previous hash as its seed, so their order
                // does not matter.
                _ => {
                    values.sort_unstable();
                    Some(values.iter().fold(0, |seed, v| xxh64(v, seed)))
                }
            }
        }
        HashInput::Cookie(name) => cookie(parts, name).map(|v| xxh64(v.as_bytes(), 0)),
        HashInput::SourceIp => Some(xxh64(peer.ip().to_string().as_bytes(), 0)),
        HashInput::QueryParameter(name) => {
            query_parameter(parts, name).map(|v| xxh64(v.as_bytes(), 0))
        }
    }
}

/// A header's values; the pseudo-headers Envoy keeps in the same map are read from the request line.
fn header_values<'a>(parts: &'a Parts, name: &str) -> Vec<&'a [u8]> {
    match name {
        ":authority" => parts
            .headers
            .get(http::header::HOST)
            .map(|v| v.as_bytes())
            .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
            .into_iter()
            .collect(),
        ":path" => parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().as_bytes())
            .into_iter()
            .collect(),
        ":method" => vec![parts.method.as_str().as_bytes()],
        _ => parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect(),
    }
}

/// The first cookie of that name, over every `Cookie` header.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"'))
        })
}

/// The first query parameter of that name, as it is in the path (not decoded).
fn query_parameter<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn policy(input: HashInput, terminal: bool) -> HashPolicy {
        HashPolicy { input, terminal }
    }

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

    #[test]
    fn inputs_and_their_combination() {
        let p = parts(
            "/a?user=bob&x=1",
            &[("x-user", "alice"), ("cookie", "a=1; session=s1")],
        );
        let header = request_hash(
            &[policy(HashInput::Header("x-user".into()), false)],
            &p,
            PEER,
        );
        assert_eq!(header, Some(xxh64(b"alice", 0)));
        let query = request_hash(
            &[policy(HashInput::QueryParameter("user".into()), false)],
            &p,
            PEER,
        );
        assert_eq!(query, Some(xxh64(b"bob", 0)));
        let cookie = request_hash(
            &[policy(HashInput::Cookie("session".into()), false)],
            &p,
            PEER,
        );
        assert_eq!(cookie, Some(xxh64(b"s1", 0)));
        let ip = request_hash(&[policy(HashInput::SourceIp, false)], &p, PEER);
        assert_eq!(ip, Some(xxh64(b"127.0.0.1", 0)));
        // Two policies: rotate and XOR; a terminal one that hashed stops the list.
        let both = [
            policy(HashInput::Header("x-user".into()), false),
            policy(HashInput::SourceIp, false),
        ];
        let expected = xxh64(b"alice", 0).rotate_left(1) ^ xxh64(b"127.0.0.1", 0);
        assert_eq!(request_hash(&both, &p, PEER), Some(expected));
        let stop = [
            policy(HashInput::Header("x-user".into()), true),
            policy(HashInput::SourceIp, false),
        ];
        assert_eq!(request_hash(&stop, &p, PEER), header);
        // A missing input adds nothing.
        let missing = [policy(HashInput::Header("x-none".into()), false)];
        assert_eq!(request_hash(&missing, &p, PEER), None);
    }

    #[test]
    fn several_values_hash_the_same_in_any_order() {
        let a = parts("/", &[("x-k", "one"), ("x-k", "two")]);
        let b = parts("/", &[("x-k", "two"), ("x-k", "one")]);
        let policies = [policy(HashInput::Header("x-k".into()), false)];
        assert_eq!(
            request_hash(&policies, &a, PEER),
            request_hash(&policies, &b, PEER)
        );
    }
}
