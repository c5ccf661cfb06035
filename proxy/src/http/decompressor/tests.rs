#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::inflate::{Inflater, LibraryStats};
use super::{advertise, drop_first_coding, first_coding_is};
use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Words drawn from a few hundred: back-references reach past 512 bytes.
fn far() -> Vec<u8> {
    let mut state: u32 = 11;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        state >> 16
    };
    let words: Vec<Vec<u8>> = (0..400)
        .map(|_| (0..6).map(|_| b'a' + (next() % 10) as u8).collect())
        .collect();
    let mut out = Vec::new();
    while out.len() < 20_000 {
        out.extend_from_slice(&words[next() as usize % words.len()]);
        out.push(b' ');
    }
    out
}

#[test]
fn chunk_size_and_inflate_ratio_bound_the_output() {
    let stats = LibraryStats::default();
    // A bomb: Envoy stops after the first full piece past ratio x input, keeping whole pieces only.
    let bomb = gzip(&vec![0u8; 1_000_000]);
    for (chunk, ratio) in [(4096u32, 100u32), (8192, 20)] {
        let mut inflater = Inflater::gzip(15, chunk, ratio);
        let out = inflater.inflate(&bomb, &stats);
        let limit = u64::from(ratio) * bomb.len() as u64;
        let pieces = limit / u64::from(chunk) + 1;
        assert_eq!(
            out.len() as u64,
            pieces * u64::from(chunk),
            "{chunk} {ratio}"
        );
        assert!(out.iter().all(|b| *b == 0));
    }
    assert_eq!(stats.zlib_data_error.get(), 2);
    // Within the ratio, in frames of any size, everything comes out.
    let data = far();
    let compressed = gzip(&data);
    let mut inflater = Inflater::gzip(15, 4096, 100);
    let mut out = Vec::new();
    for piece in compressed.chunks(700) {
        out.extend(inflater.inflate(piece, &stats));
    }
    out.extend(inflater.inflate(&[], &stats));
    assert_eq!(out, data);
    assert_eq!(stats.zlib_data_error.get(), 2);
    // A 512-byte window cannot follow references further back: decoding stops with an error.
    let mut narrow = Inflater::gzip(9, 4096, 100);
    let out = narrow.inflate(&compressed, &stats);
    assert!(
        out.len() < data.len() && data.starts_with(&out),
        "{} of {}",
        out.len(),
        data.len()
    );
    assert_eq!(stats.zlib_data_error.get(), 3);
    // Brotli and zstd, in frames, with their output pieces.
    let mut brotli_bytes = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut brotli_bytes, 4096, 5, 22);
        writer.write_all(&data).unwrap();
    }
    let zstd_bytes = zstd::stream::encode_all(&data[..], 3).unwrap();
    for (mut inflater, bytes) in [
        (Inflater::brotli(4096), brotli_bytes),
        (Inflater::zstd(4096), zstd_bytes),
    ] {
        let mut out = Vec::new();
        for piece in bytes.chunks(300) {
            out.extend(inflater.inflate(piece, &stats));
        }
        out.extend(inflater.inflate(&[], &stats));
        assert_eq!(out, data);
    }
    // Brotli's fixed ratio of 100: a 1 MB run of zeros from a few bytes stops early.
    let mut brotli_bomb = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut brotli_bomb, 4096, 5, 22);
        writer.write_all(&vec![0u8; 1_000_000]).unwrap();
    }
    let mut inflater = Inflater::brotli(4096);
    let out = inflater.inflate(&brotli_bomb, &stats);
    assert!(out.len() < 1_000_000);
    assert_eq!(stats.brotli_output_overflow.get(), 1);
    assert_eq!(stats.brotli_error.get(), 1);
}

fn headers(name: http::HeaderName, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, value.parse().unwrap());
    headers
}

#[test]
fn content_encoding_first_token_decides_and_leaves() {
    assert!(first_coding_is(
        &headers(CONTENT_ENCODING, " GZIP , br"),
        "gzip"
    ));
    assert!(!first_coding_is(
        &headers(CONTENT_ENCODING, "br, gzip"),
        "gzip"
    ));
    let mut h = headers(CONTENT_ENCODING, "gzip , br, deflate");
    drop_first_coding(&mut h);
    assert_eq!(h[CONTENT_ENCODING], "br, deflate");
    let mut h = headers(CONTENT_ENCODING, "gzip");
    drop_first_coding(&mut h);
    assert!(!h.contains_key(CONTENT_ENCODING));
}

/// What Envoy 1.40 sent upstream for each `accept-encoding` (checked by hand against real Envoy).
#[test]
fn accept_encoding_is_advertised_as_envoy_does() {
    for (sent, upstream) in [
        ("gzip;q=0.5, br", "br,gzip"),
        ("GZIP", "GZIP,gzip"),
        (" br , deflate ", "br,deflate,gzip"),
        ("identity", "identity,gzip"),
        ("*", "*,gzip"),
        ("gzip,gzip", "gzip"),
        ("br;q=0", "br;q=0,gzip"),
        ("gzip ; q=1", "gzip"),
        ("br,,deflate", "br,deflate,gzip"),
        ("", "gzip"),
        (",", "gzip"),
    ] {
        let mut h = headers(ACCEPT_ENCODING, sent);
        advertise(&mut h, "gzip");
        assert_eq!(h[ACCEPT_ENCODING], upstream, "{sent:?}");
    }
    let mut h = HeaderMap::new();
    advertise(&mut h, "br");
    assert_eq!(h[ACCEPT_ENCODING], "br");
}
