use super::body::Encoder;
use super::choice::{Decision, Peer, Reason, choose};
use outrigger_config::model::http::CompressorLibrary;
use std::io::Read;

fn peers() -> Vec<Peer> {
    let types = vec!["text/plain".to_string(), "application/json".to_string()];
    vec![
        Peer {
            encoding: "gzip",
            content_types: types.clone(),
            choose_first: false,
        },
        Peer {
            encoding: "br",
            content_types: types,
            choose_first: false,
        },
    ]
}

fn decided(accept: &str, content_type: Option<&str>) -> (String, Reason) {
    let Decision { encoding, reason } = choose(accept, content_type, &peers());
    (encoding, reason)
}

#[test]
fn accept_encoding_is_decided_like_envoy() {
    let d = |a| decided(a, Some("text/plain"));
    assert_eq!(d("gzip"), ("gzip".into(), Reason::Compressor));
    assert_eq!(d("br"), ("br".into(), Reason::Compressor));
    assert_eq!(d("gzip;q=0.5, br;q=0.8"), ("br".into(), Reason::Compressor));
    // Equal q-values: the earlier in the header wins.
    assert_eq!(d("br, gzip"), ("br".into(), Reason::Compressor));
    assert_eq!(d("gzip, br"), ("gzip".into(), Reason::Compressor));
    // `*` takes the chain's first compressor.
    assert_eq!(d("*"), ("gzip".into(), Reason::Wildcard));
    assert_eq!(d("x, *"), ("gzip".into(), Reason::Wildcard));
    assert_eq!(d("gzip;q=0, *"), ("br".into(), Reason::Wildcard));
    assert_eq!(d("identity"), ("identity".into(), Reason::Identity));
    // Codings are compared with their case; q=0 refuses; unknown codings alone are not valid.
    assert_eq!(d("GZIP"), ("identity".into(), Reason::NotValid));
    assert_eq!(d("gzip;q=0"), ("identity".into(), Reason::NotValid));
    assert_eq!(d("deflate"), ("identity".into(), Reason::NotValid));
    assert_eq!(d(""), ("identity".into(), Reason::NotValid));
    // An unparsable q-value drops the coding.
    assert_eq!(d("br;q=x, gzip;q=0.1"), ("gzip".into(), Reason::Compressor));
    // A content type no compressor takes leaves nothing to choose.
    assert_eq!(
        decided("gzip", Some("image/png")),
        ("identity".into(), Reason::NotValid)
    );
    // No content type: every compressor may compress.
    assert_eq!(decided("br", None), ("br".into(), Reason::Compressor));
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Compresses `body` in three frames, as the filter does.
fn encode(library: &CompressorLibrary, body: &[u8]) -> Vec<u8> {
    let mut encoder = Encoder::new(library).unwrap();
    let mut out = Vec::new();
    for chunk in body.chunks(body.len() / 3 + 1) {
        let flushed = encoder.compress(chunk).unwrap();
        // Each frame is flushed: what came so far can be decoded before the end.
        out.extend_from_slice(&flushed);
    }
    out.extend_from_slice(&encoder.finish().unwrap());
    out
}

#[test]
fn gzip_level_and_brotli_quality_reach_the_encoder() {
    let body: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {} of {}\n", i % 97, i % 13).into_bytes())
        .collect();
    let fast = encode(&CompressorLibrary::Gzip { level: 1 }, &body);
    let best = encode(&CompressorLibrary::Gzip { level: 9 }, &body);
    assert_eq!(gunzip(&fast), body);
    assert_eq!(gunzip(&best), body);
    assert!(best.len() < fast.len(), "{} !< {}", best.len(), fast.len());
    let low = encode(
        &CompressorLibrary::Brotli {
            quality: 0,
            window_bits: 10,
        },
        &body,
    );
    let high = encode(
        &CompressorLibrary::Brotli {
            quality: 11,
            window_bits: 24,
        },
        &body,
    );
    assert_eq!(unbrotli(&low), body);
    assert_eq!(unbrotli(&high), body);
    assert!(high.len() < low.len(), "{} !< {}", high.len(), low.len());
    // The window: a block repeated 32 KiB later is found with a 16 MiB window, not with a 1 KiB one.
    let block: Vec<u8> = (0..32_768u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let repeated = [block.clone(), block].concat();
    let brotli = |window_bits| {
        encode(
            &CompressorLibrary::Brotli {
                quality: 5,
                window_bits,
            },
            &repeated,
        )
    };
    let (narrow, wide) = (brotli(10), brotli(24));
    assert_eq!(unbrotli(&wide), repeated);
    assert!(
        wide.len() * 3 < narrow.len() * 2,
        "{} vs {}",
        wide.len(),
        narrow.len()
    );
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).unwrap()
}

#[test]
fn zstd_level_checksum_and_strategy_reach_the_encoder() {
    let body: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {} of {}\n", i % 997, i % 13).into_bytes())
        .collect();
    let zstd = |level, checksum, strategy| {
        encode(
            &CompressorLibrary::Zstd {
                level,
                checksum,
                strategy,
            },
            &body,
        )
    };
    let fast = zstd(1, false, 0);
    let best = zstd(19, false, 0);
    assert_eq!(unzstd(&fast), body);
    assert_eq!(unzstd(&best), body);
    assert!(best.len() < fast.len(), "{} !< {}", best.len(), fast.len());
    // The frame header's checksum flag (bit 2 of the descriptor after the 4-byte magic), and 4 more bytes.
    let summed = zstd(1, true, 0);
    assert_eq!(unzstd(&summed), body);
    assert_eq!(fast[4] & 0x04, 0);
    assert_eq!(summed[4] & 0x04, 0x04);
    assert_eq!(summed.len(), fast.len() + 4);
    // The strategy overrides the level's own: FAST at level 19 compresses worse than level 19's BTULTRA2.
    let weak = zstd(19, false, 1);
    assert_eq!(unzstd(&weak), body);
    assert!(weak.len() > best.len(), "{} !> {}", weak.len(), best.len());
}
