//! The config loader on arbitrary bytes: `load_bytes`, the path every bootstrap file takes (YAML or JSON text,
//! reflection over Envoy's descriptors, the support table, conversion, reference checks). The first byte picks
//! the format. Any input may be refused, with diagnostics; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrigger_config::{Format, fuzzing, load_bytes};

fuzz_target!(
    init: {
        if let Err(e) = fuzzing::keep_descriptors() {
            panic!("{e}");
        }
    },
    |data: &[u8]| {
        let Some((&first, text)) = data.split_first() else {
            return;
        };
        let format = if first & 1 == 0 { Format::Yaml } else { Format::Json };
        match load_bytes(text, format) {
            Ok(loaded) => assert!(!loaded.warnings.has_errors(), "a loaded config carries errors"),
            Err(diagnostics) => assert!(diagnostics.has_errors(), "refused without an error"),
        }
    }
);
