//! `outrigger iptables` argument handling, without running anything: the flag checks (`validate`), the rules
//! and the iptables-restore script they become, and the merge with an existing `iptables-save` table.
//!
//! Input: text fields separated by 0x1E: inbound ports, excluded inbound ports, excluded outbound ports,
//! excluded CIDRs, included CIDRs, then `outbound inbound uid gid` numbers, then an `iptables-save` text.
//! Checked: flags that pass `validate` give one script line per rule (no value can smuggle in a line of its
//! own), only rules in our chains and only ports iptables takes; merging drops exactly ours, whatever the
//! existing table holds.
#![no_main]

// The binary crate's file, compiled as it is: the target needs only its pure functions.
#[allow(dead_code)]
#[path = "../../../src/iptables/rules.rs"]
mod rules;

use libfuzzer_sys::fuzz_target;
use rules::{CHAIN_PREFIX, Capture, Family};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\x1e');
    let mut next = || fields.next().unwrap_or("").to_string();
    let (inbound_ports, exclude_inbound_ports, exclude_outbound_ports) = (next(), next(), next());
    let (exclude_outbound_cidrs, include_outbound_cidrs, numbers) = (next(), next(), next());
    // iptables-save writes `\n` line ends only; `str::lines` would also eat a `\r` before one, so a table
    // with them would not round-trip to the same bytes (harmlessly: iptables never sees them).
    let saved = next().replace('\r', "");
    let mut numbers = numbers.split_whitespace().map(|n| n.parse::<u32>().ok());
    let mut number = || numbers.next().flatten();
    let capture = Capture {
        outbound_port: number()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(15001),
        inbound_port: number()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(15006),
        proxy_uid: number().unwrap_or(1337),
        proxy_gid: number(),
        inbound_ports,
        exclude_inbound_ports,
        exclude_outbound_ports,
        exclude_outbound_cidrs,
        include_outbound_cidrs,
    };

    let existing = rules::nat_without_ours(&saved);
    assert!(
        existing.iter().all(|l| !l.contains(CHAIN_PREFIX)),
        "kept one of ours"
    );
    if rules::validate(&capture).is_err() {
        return;
    }
    for family in [Family::V4, Family::V6] {
        let ours = rules::rules(&capture, family);
        for line in &ours {
            assert!(!line.contains(['\n', '\r']), "a rule spans lines: {line:?}");
            assert!(
                line.contains(CHAIN_PREFIX),
                "a rule outside our chains: {line:?}"
            );
            if let Some((_, port)) = line.split_once("--dport ") {
                let port = port.split(' ').next().unwrap_or("");
                assert!(
                    port.parse::<u16>().is_ok(),
                    "not a port for iptables: {line:?}"
                );
            }
        }
        let script = rules::install_script(&capture, family);
        assert_eq!(script.lines().count(), ours.len() + 2, "{script}");

        // Installing over the existing table, then removing ours, gives back the existing table.
        let merged = rules::nat_table(existing.clone(), ours);
        let mut again = rules::nat_without_ours(&merged);
        let mut before = existing.clone();
        again.sort();
        before.sort();
        assert_eq!(again, before, "merged:\n{merged}");
    }
});
