//! Bad input never panics: it is answered with diagnostics. Random bytes, random YAML, and mutations of real
//! configs all go through the loader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outrigger_config::{Format, load_bytes};
use proptest::prelude::*;

fn corpus_texts() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs");
    let mut texts = Vec::new();
    for dir in ["valid", "invalid", "unsupported"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            texts.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    texts.sort();
    texts
}

/// Loads must end in Ok or Err with at least one error, never a panic or an empty error.
fn assert_answers(bytes: &[u8], format: Format) {
    if let Err(problems) = load_bytes(bytes, format) {
        assert!(problems.has_errors(), "a refusal must say why");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_answers(&bytes, Format::Yaml);
        assert_answers(&bytes, Format::Json);
    }

    #[test]
    fn random_yaml_like_text(text in "[a-z_:{}\\[\\],\"'&*!0-9 \\n.-]{0,300}") {
        assert_answers(text.as_bytes(), Format::Yaml);
    }

    #[test]
    fn mutated_real_configs(index in 0usize..1000, edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)) {
        let texts = corpus_texts();
        let mut bytes = texts[index % texts.len()].clone();
        for (position, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = position % bytes.len();
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
        }
        assert_answers(&bytes, Format::Yaml);
    }
}

#[test]
fn empty_and_comment_only_files_are_refused() {
    for text in ["", "   \n", "# only a comment\n"] {
        let problems = load_bytes(text.as_bytes(), Format::Yaml).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains("empty")),
            "{text:?}: {problems:?}"
        );
    }
}

#[test]
fn an_empty_object_is_an_empty_bootstrap() {
    let loaded = load_bytes(b"{}", Format::Json).unwrap();
    assert!(loaded.snapshot.listeners.is_empty() && loaded.snapshot.clusters.is_empty());
}

#[test]
fn non_utf8_is_refused_with_the_offset() {
    let problems = load_bytes(b"admin: {}\n\xff\xfe", Format::Yaml).unwrap_err();
    let message = &problems.errors().next().unwrap().message;
    assert!(
        message.contains("UTF-8") && message.contains("offset 10"),
        "{message}"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("admin: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let problems = load_bytes(text.as_bytes(), Format::Yaml).unwrap_err();
    assert!(
        problems
            .errors()
            .next()
            .unwrap()
            .message
            .contains("recursion limit")
    );
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let problems = load_bytes(text.as_bytes(), Format::Yaml).unwrap_err();
    assert!(
        problems
            .errors()
            .next()
            .unwrap()
            .message
            .contains("repetition limit"),
        "{problems:?}"
    );
}

#[test]
fn huge_numbers_are_refused() {
    for text in [
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 99999999999999999999999}}}",
        "static_resources: {clusters: [{name: a, connect_timeout: 99999999999999999999999s}]}",
        "static_resources: {clusters: [{name: a, per_connection_buffer_limit_bytes: 1e400}]}",
    ] {
        assert!(load_bytes(text.as_bytes(), Format::Yaml).is_err(), "{text}");
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = vec![b' '; outrigger_config::MAX_INPUT_BYTES + 1];
    let problems = load_bytes(&bytes, Format::Yaml).unwrap_err();
    assert!(problems.errors().next().unwrap().message.contains("limit"));
}
