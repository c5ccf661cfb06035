//! The table of proofs against the support table and the repository's test files.

use super::{Proof, entries};
use crate::support::{FieldSupport, Reader, field_support_for, messages, proxyless_messages};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// Every field Supported for the proxy or for proxyless gRPC clients, `message.field`, except protobuf's own
/// types.
fn supported() -> BTreeSet<String> {
    messages()
        .chain(proxyless_messages())
        .filter(|m| !m.message.starts_with("google.protobuf."))
        .flat_map(|m| {
            m.fields
                .split_whitespace()
                .map(move |f| format!("{}.{f}", m.message))
        })
        .collect()
}

#[test]
fn every_supported_field_has_a_proof_or_says_what_is_missing() {
    let listed: HashSet<&str> = entries().map(|(key, _)| *key).collect();
    let missing: Vec<String> = supported()
        .into_iter()
        .filter(|f| !listed.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "Supported fields with no entry in support/proofs/: cite the tests that prove them, or say what is \
         not acted on yet with NotYet(\"...\") (the loader then warns when it is set):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_entry_is_a_supported_field_listed_once() {
    let mut seen = HashSet::new();
    for (key, _) in entries() {
        assert!(seen.insert(*key), "{key} has two entries");
        let Some((message, field)) = key.rsplit_once('.') else {
            panic!("{key} is not message.field");
        };
        assert!(
            [Reader::Proxy, Reader::ProxylessClient]
                .into_iter()
                .any(|reader| field_support_for(reader, message, field) == FieldSupport::Supported),
            "{key} has an entry but is not Supported in support.rs (nor in support/proxyless.rs)"
        );
    }
}

#[test]
fn every_cited_test_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: HashMap<&str, String> = HashMap::new();
    for (key, proof) in entries() {
        let tests = match proof {
            Proof::Tests(tests) => *tests,
            Proof::NotYet(what) => {
                assert!(
                    !what.is_empty() && !what.ends_with('.'),
                    "{key}: say what is not done, without a full stop (it ends a sentence)"
                );
                continue;
            }
        };
        assert!(!tests.is_empty(), "{key}: Tests(&[]) proves nothing");
        for test in tests {
            let Some((file, name)) = test.split_once("::") else {
                panic!("{key}: {test:?} is not path/to/file.rs::test_fn");
            };
            let text = files.entry(file).or_insert_with(|| {
                std::fs::read_to_string(root.join(file))
                    .unwrap_or_else(|e| panic!("{key}: cannot read {file}: {e}"))
            });
            assert!(
                is_test(text, name),
                "{key}: {file} has no test function {name}"
            );
        }
    }
}

/// `fn name(` is in `text`, and an attribute naming a test (`#[test]`, `#[tokio::test(...)]`) sits right above.
fn is_test(text: &str, name: &str) -> bool {
    let Some(at) = text.find(&format!("fn {name}(")) else {
        return false;
    };
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .take_while(|line| line.starts_with("#[") || line.starts_with("//"))
        .any(|line| line.starts_with("#[") && line.contains("test"))
}

#[test]
fn the_test_lookup_needs_a_test_attribute() {
    let text = "#[test]\nfn proven() {}\n\n/// Helper.\nfn helper() {}\n#[tokio::test(start_paused = true)]\n\
                /// Doc.\nasync fn later() {}\n";
    assert!(is_test(text, "proven"));
    assert!(is_test(text, "later"));
    assert!(!is_test(text, "helper"));
    assert!(!is_test(text, "missing"));
}
