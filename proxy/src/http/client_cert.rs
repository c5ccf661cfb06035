//! `x-forwarded-client-cert` (XFCC): tells the application who the TLS client was, as Envoy does, under
//! `forward_client_cert_details` and `set_current_client_cert_details`.

use crate::tls::{Identity, Session};
use http::{HeaderMap, HeaderValue};
use outrigger_config::model::http::{ClientCertDetails, ForwardClientCertDetails};

const XFCC: &str = "x-forwarded-client-cert";

pub fn apply(
    headers: &mut HeaderMap,
    mode: ForwardClientCertDetails,
    details: ClientCertDetails,
    tls: Option<&Session>,
) {
    let client = tls.and_then(|t| t.peer.as_deref().map(|peer| (t, peer)));
    let current = || client.map(|(session, peer)| element(session, peer, details));
    let value = match (mode, client) {
        (ForwardClientCertDetails::AlwaysForwardOnly, _) => return,
        (ForwardClientCertDetails::ForwardOnly, Some(_)) => return,
        (ForwardClientCertDetails::AppendForward, Some(_)) => {
            let previous = headers
                .get(XFCC)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty());
            match (previous, current()) {
                (Some(previous), Some(current)) => Some(format!("{previous},{current}")),
                (None, current) => current,
                (Some(previous), None) => Some(previous.to_string()),
            }
        }
        (ForwardClientCertDetails::SanitizeSet, Some(_)) => current(),
        // SANITIZE, and every mode when the client presented no certificate.
        _ => None,
    };
    headers.remove(XFCC);
    if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(XFCC, value);
    }
}

/// One element: `By=...;Hash=...;Cert="...";Chain="...";Subject="...";URI=...;DNS=...`.
fn element(session: &Session, peer: &Identity, details: ClientCertDetails) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(by) = &session.local_uri {
        pairs.push(("By", by.clone()));
    }
    pairs.push(("Hash", peer.hash.clone()));
    if details.cert
        && let Some(leaf) = peer.chain.first()
    {
        pairs.push(("Cert", url_encode(&pem(leaf.as_ref()))));
    }
    if details.chain {
        let chain: String = peer.chain.iter().map(|c| pem(c.as_ref())).collect();
        pairs.push(("Chain", url_encode(&chain)));
    }
    if details.subject {
        pairs.push(("Subject", peer.subject.clone()));
    }
    if details.uri
        && let Some(uri) = peer.uris.first()
    {
        pairs.push(("URI", uri.clone()));
    }
    if details.dns {
        pairs.extend(peer.dns.iter().map(|d| ("DNS", d.clone())));
    }
    pairs
        .into_iter()
        .map(|(key, value)| format!("{key}={}", quote(key, &value)))
        .collect::<Vec<_>>()
        .join(";")
}

/// Envoy always quotes `Subject`, `Cert` and `Chain`; other values only when they hold a separator.
fn quote(key: &str, value: &str) -> String {
    let needs = matches!(key, "Subject" | "Cert" | "Chain") || value.contains([',', ';', '=', '"']);
    if needs {
        format!("\"{}\"", value.replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

fn pem(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Percent-encodes everything but letters, digits and `-._~` (RFC 3986's unreserved characters).
fn url_encode(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn session() -> Session {
        Session {
            peer: Some(Arc::new(Identity {
                uris: vec!["spiffe://cluster.local/ns/a/sa/client".into()],
                dns: vec!["client.a".into(), "client.b".into()],
                subject: "CN=client,O=Outrigger".into(),
                hash: "abc123".into(),
                ..Identity::default()
            })),
            local_uri: Some("spiffe://cluster.local/ns/b/sa/server".into()),
        }
    }

    fn all() -> ClientCertDetails {
        ClientCertDetails {
            subject: true,
            uri: true,
            dns: true,
            ..ClientCertDetails::default()
        }
    }

    fn xfcc(headers: &HeaderMap) -> Option<&str> {
        headers.get(XFCC).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn sanitize_set_writes_the_current_client() {
        let mut headers = HeaderMap::new();
        headers.insert(XFCC, HeaderValue::from_static("By=forged"));
        apply(
            &mut headers,
            ForwardClientCertDetails::SanitizeSet,
            all(),
            Some(&session()),
        );
        assert_eq!(
            xfcc(&headers),
            Some(
                "By=spiffe://cluster.local/ns/b/sa/server;Hash=abc123;Subject=\"CN=client,O=Outrigger\";\
                 URI=spiffe://cluster.local/ns/a/sa/client;DNS=client.a;DNS=client.b"
            )
        );
    }

    #[test]
    fn append_forward_keeps_earlier_hops() {
        let mut headers = HeaderMap::new();
        headers.insert(XFCC, HeaderValue::from_static("Hash=first"));
        let uri_only = ClientCertDetails {
            uri: true,
            ..ClientCertDetails::default()
        };
        apply(
            &mut headers,
            ForwardClientCertDetails::AppendForward,
            uri_only,
            Some(&session()),
        );
        assert_eq!(
            xfcc(&headers),
            Some(
                "Hash=first,By=spiffe://cluster.local/ns/b/sa/server;Hash=abc123;\
                 URI=spiffe://cluster.local/ns/a/sa/client"
            )
        );
    }

    #[test]
    fn without_a_client_certificate_the_header_goes() {
        for mode in [
            ForwardClientCertDetails::Sanitize,
            ForwardClientCertDetails::ForwardOnly,
            ForwardClientCertDetails::AppendForward,
            ForwardClientCertDetails::SanitizeSet,
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(XFCC, HeaderValue::from_static("By=forged"));
            apply(&mut headers, mode, all(), None);
            assert_eq!(xfcc(&headers), None, "{mode:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(XFCC, HeaderValue::from_static("By=kept"));
        apply(
            &mut headers,
            ForwardClientCertDetails::AlwaysForwardOnly,
            all(),
            None,
        );
        assert_eq!(xfcc(&headers), Some("By=kept"));
    }

    /// `cert` adds the leaf and `chain` every certificate presented, leaf first, each as PEM with Envoy's
    /// escapes (`%0A` for the line ends, `%20`, `%2B`, `%2F`, `%3D`), quoted.
    #[test]
    fn cert_and_chain_carry_the_presented_certificates() {
        let mut session = session();
        let peer = Identity {
            chain: vec![vec![1, 2, 3].into(), vec![0xfb, 0xff, 0x4f].into()],
            hash: "abc123".into(),
            ..Identity::default()
        };
        session.peer = Some(Arc::new(peer));
        let details = ClientCertDetails {
            cert: true,
            chain: true,
            ..ClientCertDetails::default()
        };
        let mut headers = HeaderMap::new();
        apply(
            &mut headers,
            ForwardClientCertDetails::SanitizeSet,
            details,
            Some(&session),
        );
        let block = |base64: &str| {
            format!("-----BEGIN%20CERTIFICATE-----%0A{base64}%0A-----END%20CERTIFICATE-----%0A")
        };
        let (leaf, other) = (block("AQID"), block("%2B%2F9P"));
        assert_eq!(
            xfcc(&headers),
            Some(
                format!(
                    "By=spiffe://cluster.local/ns/b/sa/server;Hash=abc123;Cert=\"{leaf}\";Chain=\"{leaf}{other}\""
                )
                .as_str()
            )
        );
    }

    #[test]
    fn pem_is_base64_in_64_column_lines() {
        let text = pem(&[0u8; 60]);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\nAAAA"));
        assert_eq!(url_encode("a b/="), "a%20b%2F%3D");
    }
}
