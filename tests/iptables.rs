//! `outrigger iptables` against real iptables, inside network namespaces the tests create.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::netns::{Namespace, can_run};

fn outrigger_path() -> String {
    env!("CARGO_BIN_EXE_outrigger").to_string()
}

#[test]
fn print_shows_the_script_without_root() {
    let output = support::outrigger()
        .args(["iptables", "print", "--exclude-outbound-ports", "5432"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(
        script.contains("-A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001"),
        "{script}"
    );
    assert!(
        script.contains("-A OUTRIGGER_OUTPUT -p tcp --dport 5432 -j RETURN"),
        "{script}"
    );
    assert!(
        script.contains("-A OUTRIGGER_OUTPUT -d ::1/128 -j RETURN"),
        "IPv6 too: {script}"
    );
    let bad = support::outrigger()
        .args(["iptables", "install", "--exclude-inbound-ports", "web"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--exclude-inbound-ports: \"web\" is not a port")
    );
}

/// Our lines of `iptables-save -t nat` (and of ip6tables-save).
fn ours(ns: &Namespace) -> Vec<String> {
    let mut lines = Vec::new();
    for save in ["iptables-save", "ip6tables-save"] {
        lines.extend(
            ns.exec(&[save, "-t", "nat"])
                .lines()
                .filter(|l| l.contains("OUTRIGGER_"))
                .map(str::to_string),
        );
    }
    lines
}

#[test]
fn install_is_idempotent_and_uninstall_removes_exactly_ours() {
    if !can_run() {
        return;
    }
    let ns = Namespace::create(format!("ipt-{}", std::process::id()));
    // Somebody else's rule, which must survive both.
    ns.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-d",
        "198.18.9.9/32",
        "-j",
        "RETURN",
    ]);
    let binary = outrigger_path();
    ns.exec(&[&binary, "iptables", "install"]);
    let first = ours(&ns);
    assert!(
        first
            .iter()
            .any(|l| l == "-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT"),
        "{first:#?}"
    );
    assert!(
        first
            .iter()
            .any(|l| l.contains("--uid-owner 1337 -j RETURN")),
        "{first:#?}"
    );
    ns.exec(&[&binary, "iptables", "install"]);
    assert_eq!(ours(&ns), first, "installing twice gives the same rules");

    ns.exec(&[&binary, "iptables", "uninstall"]);
    assert!(ours(&ns).is_empty(), "{:#?}", ours(&ns));
    let nat = ns.exec(&["iptables-save", "-t", "nat"]);
    assert!(
        nat.contains("-A OUTPUT -d 198.18.9.9/32 -j RETURN"),
        "the foreign rule is gone:\n{nat}"
    );
}

#[test]
fn without_net_admin_nothing_is_changed_and_the_error_says_why() {
    if !can_run() {
        return;
    }
    let ns = Namespace::create(format!("ipt-noadmin-{}", std::process::id()));
    let binary = outrigger_path();
    let output = ns
        .command(&[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            &binary,
            "iptables",
            "install",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NET_ADMIN") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(ours(&ns).is_empty());
}

#[test]
fn the_legacy_backend_works_and_auto_follows_it() {
    if !can_run() {
        return;
    }
    let ns = Namespace::create(format!("ipt-legacy-{}", std::process::id()));
    let binary = outrigger_path();
    ns.exec(&[&binary, "iptables", "install", "--iptables-mode", "legacy"]);
    let count = |save: &str| {
        ns.exec(&[save, "-t", "nat"])
            .lines()
            .filter(|l| l.contains("OUTRIGGER_"))
            .count()
    };
    let legacy = count("iptables-legacy-save");
    assert!(legacy > 0);
    // A plain install finds the legacy rules and keeps using that backend (no second set in nft).
    ns.exec(&[&binary, "iptables", "install"]);
    assert_eq!(
        (count("iptables-legacy-save"), count("iptables-nft-save")),
        (legacy, 0)
    );
    ns.exec(&[&binary, "iptables", "uninstall"]);
    assert_eq!(count("iptables-legacy-save"), 0);
}
