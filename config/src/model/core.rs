//! Small shared types: durations, addresses, header mutations, string matchers, data sources.

use serde::{Serialize, Serializer};
use std::net::IpAddr;
use std::time::Duration;

/// Serialises a duration the way Envoy's YAML writes it: `"0.25s"`.
pub fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub fn optional_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_str("disabled"),
    }
}

pub fn format_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else {
        let fraction = format!("{:09}", nanos);
        format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
    }
}

/// An upstream host: an IP address, or a DNS name resolved by the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// What `append_action` does when the header is already there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    /// Envoy's default.
    #[default]
    AppendIfExistsOrAdd,
    AddIfAbsent,
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

/// One `HeaderValueOption`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeaderToAdd {
    pub name: String,
    pub value: String,
    pub append_action: AppendAction,
    /// Envoy's default: false (a header whose value is empty is not added).
    pub keep_empty_value: bool,
}

/// Headers added and removed at one level (route configuration, virtual host, route, weighted cluster).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderMutations {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderToAdd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        *self == HeaderMutations::default()
    }
}

/// A regular expression in RE2 syntax (Envoy's `safe_regex`), compiled once at load time.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    /// Anchored at both ends: Envoy matches a `safe_regex` against the whole value.
    full: regex::Regex,
    /// Unanchored, for rewrites that replace every match.
    any: regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let full = regex::Regex::new(&format!("^(?:{source})$"))?;
        let any = regex::Regex::new(source)?;
        Ok(Self {
            source: source.to_string(),
            full,
            any,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the whole of `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        self.full.is_match(value)
    }

    /// Every match replaced by `substitution` (`\1` style group references, as in Envoy's `regex_rewrite`).
    pub fn replace_all(&self, value: &str, substitution: &str) -> String {
        let substitution = regex_substitution(substitution);
        self.any
            .replace_all(value, substitution.as_str())
            .into_owned()
    }
}

/// Envoy (RE2) writes group references as `\1`; the `regex` crate as `${1}`.
fn regex_substitution(envoy: &str) -> String {
    let mut out = String::with_capacity(envoy.len());
    let mut chars = envoy.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// Envoy's `StringMatcher`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    SafeRegex(Pattern),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StringMatcher {
    #[serde(flatten)]
    pub pattern: StringMatch,
    /// Envoy's default: false. Not used with `safe_regex`.
    pub ignore_case: bool,
}

impl StringMatcher {
    pub fn matches(&self, value: &str) -> bool {
        let fold = |s: &str| {
            if self.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        match &self.pattern {
            StringMatch::Exact(p) => fold(value) == fold(p),
            StringMatch::Prefix(p) => fold(value).starts_with(&fold(p)),
            StringMatch::Suffix(p) => fold(value).ends_with(&fold(p)),
            StringMatch::Contains(p) => fold(value).contains(&fold(p)),
            StringMatch::SafeRegex(re) => re.matches(value),
        }
    }
}

/// Bytes from a file (read when used, so rotation works) or written inline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Filename(String),
    InlineString(String),
    InlineBytes(#[serde(skip)] Vec<u8>),
    EnvironmentVariable(String),
}

/// Where a dynamic resource comes from. Only the aggregated stream (ADS) is supported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    Ads {
        /// Envoy's default: 15s (how long to wait for the first answer before going on without it).
        #[serde(serialize_with = "optional_duration")]
        initial_fetch_timeout: Option<Duration>,
    },
}

/// Envoy's `FractionalPercent`, as a fraction in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fraction(pub f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_envoy() {
        assert_eq!(format_duration(Duration::from_millis(250)), "0.25s");
        assert_eq!(format_duration(Duration::from_secs(15)), "15s");
    }

    #[test]
    fn patterns_match_whole_values_and_rewrite_groups() {
        let p = Pattern::new("/api/v(\\d+)/(.*)").unwrap();
        assert!(p.matches("/api/v2/users"));
        assert!(!p.matches("/x/api/v2/users"));
        assert_eq!(
            p.replace_all("/api/v2/users", "/\\2?version=\\1"),
            "/users?version=2"
        );
    }

    #[test]
    fn string_matchers_honour_ignore_case() {
        let m = StringMatcher {
            pattern: StringMatch::Prefix("Bear".into()),
            ignore_case: true,
        };
        assert!(m.matches("bearer xyz"));
        let m = StringMatcher {
            pattern: StringMatch::Prefix("Bear".into()),
            ignore_case: false,
        };
        assert!(!m.matches("bearer xyz"));
    }
}
