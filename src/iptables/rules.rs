//! The rules, as an iptables-restore script. Our chains all start with `OUTRIGGER_`, so `uninstall` can remove
//! exactly ours, and `install` first drops any it finds, so installing twice gives the same rules.

use std::net::IpAddr;

pub const CHAIN_PREFIX: &str = "OUTRIGGER_";

/// What to capture, with Istio's flag names and defaults.
#[derive(Clone, Debug, clap::Args)]
pub struct Capture {
    /// Port the proxy's outbound capture listener takes redirected traffic on (`-p`).
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// Port the proxy's inbound capture listener takes redirected traffic on (`-z`).
    #[arg(long, default_value_t = 15006)]
    pub inbound_port: u16,
    /// The proxy's UID: its own connections are never captured (`-u`).
    #[arg(long, default_value_t = 1337)]
    pub proxy_uid: u32,
    /// The proxy's GID, exempted like the UID (`-g`). Default: the UID.
    #[arg(long)]
    pub proxy_gid: Option<u32>,
    /// Inbound ports to capture: `*` for all, or a comma-separated list (`-b`).
    #[arg(long, default_value = "*")]
    pub inbound_ports: String,
    /// Inbound ports never captured (`-d`): the proxy's own metrics and health ports.
    #[arg(long, default_value = "15090,15021,15020")]
    pub exclude_inbound_ports: String,
    /// Outbound destination ports never captured (`-o`).
    #[arg(long, default_value = "")]
    pub exclude_outbound_ports: String,
    /// Outbound destination CIDRs never captured (`-x`).
    #[arg(long, default_value = "")]
    pub exclude_outbound_cidrs: String,
    /// Outbound destination CIDRs captured: `*` for all (`-i`).
    #[arg(long, default_value = "*")]
    pub include_outbound_cidrs: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// `iptables-restore` or `ip6tables-restore` (with `-legacy`/`-nft` variants from the caller's base).
    pub fn restore_command(self, base: &str) -> String {
        self.command(base, "restore")
    }

    pub fn save_command(self, base: &str) -> String {
        self.command(base, "save")
    }

    /// `base` is `iptables`, `iptables-nft` or `iptables-legacy`.
    fn command(self, base: &str, verb: &str) -> String {
        let base = match self {
            Family::V4 => base.to_string(),
            Family::V6 => base.replacen("iptables", "ip6tables", 1),
        };
        match base.split_once('-') {
            Some((tool, backend)) => format!("{tool}-{backend}-{verb}"),
            None => format!("{base}-{verb}"),
        }
    }

    fn localhost(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1/32",
            Family::V6 => "::1/128",
        }
    }

    fn accepts(self, cidr: &str) -> bool {
        let address = cidr.split('/').next().unwrap_or(cidr);
        match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => self == Family::V4,
            Ok(IpAddr::V6(_)) => self == Family::V6,
            Err(_) => false,
        }
    }
}

/// Comma-separated list, blanks dropped.
fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Checks the flags before anything is touched.
pub fn validate(capture: &Capture) -> Result<(), String> {
    // `*` (all) is a choice only for the ports captured; an exclusion names ports (`--dport *` is no rule).
    for (flag, value, all) in [
        ("--inbound-ports", &capture.inbound_ports, true),
        (
            "--exclude-inbound-ports",
            &capture.exclude_inbound_ports,
            false,
        ),
        (
            "--exclude-outbound-ports",
            &capture.exclude_outbound_ports,
            false,
        ),
    ] {
        for port in list(value) {
            if all && port == "*" {
                continue;
            }
            if port.parse::<u16>().is_err() {
                let or_all = if all { " or `*`" } else { "" };
                return Err(format!("{flag}: {port:?} is not a port (1-65535){or_all}"));
            }
        }
    }
    for (flag, value) in [
        ("--exclude-outbound-cidrs", &capture.exclude_outbound_cidrs),
        ("--include-outbound-cidrs", &capture.include_outbound_cidrs),
    ] {
        for cidr in list(value) {
            let (address, prefix) = cidr
                .split_once('/')
                .unwrap_or((cidr, if cidr.contains(':') { "128" } else { "32" }));
            let ok = cidr == "*"
                || match address.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => prefix.parse::<u8>().is_ok_and(|p| p <= 32),
                    Ok(IpAddr::V6(_)) => prefix.parse::<u8>().is_ok_and(|p| p <= 128),
                    Err(_) => false,
                };
            if !ok {
                return Err(format!(
                    "{flag}: {cidr:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"
                ));
            }
        }
    }
    Ok(())
}

/// The nat-table lines `install` adds (without `*nat`/`COMMIT`).
pub fn rules(capture: &Capture, family: Family) -> Vec<String> {
    let uid = capture.proxy_uid;
    let gid = capture.proxy_gid.unwrap_or(uid);
    let mut r: Vec<String> = [
        ":OUTRIGGER_INBOUND - [0:0]",
        ":OUTRIGGER_IN_REDIRECT - [0:0]",
        ":OUTRIGGER_OUTPUT - [0:0]",
        ":OUTRIGGER_REDIRECT - [0:0]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    r.push(format!(
        "-A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports {}",
        capture.outbound_port
    ));
    r.push(format!(
        "-A OUTRIGGER_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
        capture.inbound_port
    ));

    // Inbound: everything arriving for the pod, but the proxy's own ports.
    let inbound = list(&capture.inbound_ports);
    if !inbound.is_empty() {
        r.push("-A PREROUTING -p tcp -j OUTRIGGER_INBOUND".into());
        for port in list(&capture.exclude_inbound_ports) {
            r.push(format!(
                "-A OUTRIGGER_INBOUND -p tcp --dport {port} -j RETURN"
            ));
        }
        if inbound.contains(&"*") {
            r.push("-A OUTRIGGER_INBOUND -p tcp -j OUTRIGGER_IN_REDIRECT".into());
        } else {
            for port in inbound {
                r.push(format!(
                    "-A OUTRIGGER_INBOUND -p tcp --dport {port} -j OUTRIGGER_IN_REDIRECT"
                ));
            }
        }
    }

    // Outbound: the app's connections, never the proxy's own (the loop guard comes first), never loopback.
    r.push("-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT".into());
    r.push(format!(
        "-A OUTRIGGER_OUTPUT -m owner --uid-owner {uid} -j RETURN"
    ));
    r.push(format!(
        "-A OUTRIGGER_OUTPUT -m owner --gid-owner {gid} -j RETURN"
    ));
    for port in list(&capture.exclude_outbound_ports) {
        r.push(format!(
            "-A OUTRIGGER_OUTPUT -p tcp --dport {port} -j RETURN"
        ));
    }
    // App-to-app over loopback stays direct.
    r.push("-A OUTRIGGER_OUTPUT -o lo -j RETURN".into());
    r.push(format!(
        "-A OUTRIGGER_OUTPUT -d {} -j RETURN",
        family.localhost()
    ));
    for cidr in list(&capture.exclude_outbound_cidrs)
        .into_iter()
        .filter(|c| family.accepts(c))
    {
        r.push(format!("-A OUTRIGGER_OUTPUT -d {cidr} -j RETURN"));
    }
    let include = list(&capture.include_outbound_cidrs);
    if include.contains(&"*") {
        r.push("-A OUTRIGGER_OUTPUT -j OUTRIGGER_REDIRECT".into());
    } else {
        for cidr in include.into_iter().filter(|c| family.accepts(c)) {
            r.push(format!(
                "-A OUTRIGGER_OUTPUT -d {cidr} -j OUTRIGGER_REDIRECT"
            ));
        }
    }
    r
}

/// The whole script `print` shows: what `install` adds to the nat table.
pub fn install_script(capture: &Capture, family: Family) -> String {
    let mut script = String::from("*nat\n");
    for line in rules(capture, family) {
        script.push_str(&line);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    script
}

/// The nat table of `saved` (iptables-save output) without anything of ours, ready to append to.
pub fn nat_without_ours(saved: &str) -> Vec<String> {
    let mut in_nat = false;
    let mut lines = Vec::new();
    for line in saved.lines() {
        if line.starts_with('*') {
            in_nat = line == "*nat";
            continue;
        }
        if !in_nat || line == "COMMIT" || line.starts_with('#') || line.contains(CHAIN_PREFIX) {
            continue;
        }
        lines.push(line.to_string());
    }
    if lines.is_empty() {
        // An empty nat table still needs its built-in chains declared.
        for chain in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
            lines.push(format!(":{chain} ACCEPT [0:0]"));
        }
    }
    lines
}

/// A complete nat table: the existing rules, then ours (when installing).
pub fn nat_table(existing: Vec<String>, ours: Vec<String>) -> String {
    let (declarations, rules): (Vec<String>, Vec<String>) = existing
        .into_iter()
        .chain(ours)
        .partition(|l| l.starts_with(':'));
    let mut script = String::from("*nat\n");
    for line in declarations.into_iter().chain(rules) {
        script.push_str(&line);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    script
}

#[cfg(test)]
mod tests;
