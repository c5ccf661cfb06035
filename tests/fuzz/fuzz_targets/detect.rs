//! Protocol detection on a connection's first bytes (`detect::classify`, under each combination of the TLS and
//! HTTP inspectors) and the ClientHello reader (`detect::client_hello::parse`). Also: a ClientHello built from
//! fuzzed SNI and ALPN reads back as built, and every prefix of it is `Incomplete`.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use outrigger_proxy::detect::client_hello::{self, Parsed};
use outrigger_proxy::detect::{Verdict, classify};

fuzz_target!(|data: &[u8]| {
    for (tls, http) in [(true, true), (true, false), (false, true), (false, false)] {
        if let Verdict::Known(detected) = classify(data, tls, http) {
            assert!(
                !detected.tls || (tls && data.first() == Some(&0x16)),
                "TLS without a handshake record"
            );
            assert!(
                detected.application_protocols.is_empty() || tls || http,
                "a protocol with no inspector"
            );
        }
    }
    let parsed = client_hello::parse(data);
    if matches!(parsed, Parsed::Hello { .. }) {
        assert_eq!(
            &data[..2],
            b"\x16\x03",
            "a hello outside a handshake record"
        );
    }

    // The round trip, on names and protocols of lengths a ClientHello can carry.
    let mut u = Unstructured::new(data);
    let Ok(name) = String::arbitrary(&mut u) else {
        return;
    };
    let Ok(alpn) = Vec::<String>::arbitrary(&mut u) else {
        return;
    };
    if name.len() > 255 || alpn.len() > 8 || alpn.iter().any(|p| p.len() > 255) {
        return;
    }
    let protocols: Vec<&str> = alpn.iter().map(String::as_str).collect();
    let bytes = client_hello::encode(&name, &protocols);
    let cut = u.int_in_range(0..=bytes.len() - 1).unwrap_or(0);
    assert_eq!(
        client_hello::parse(&bytes[..cut]),
        Parsed::Incomplete,
        "prefix of {cut} bytes"
    );
    let expected = Parsed::Hello {
        server_name: Some(name.to_ascii_lowercase()),
        alpn: alpn
            .iter()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .collect(),
    };
    assert_eq!(client_hello::parse(&bytes), expected);
});
