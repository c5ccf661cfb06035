//! `normalize_path` and `merge_slashes`: the path the route table matches and the upstream receives.
//!
//! Envoy normalizes with Chromium's URL path canonicalizer, so "RFC 3986" in its docs means that
//! canonicalizer's rules, which this module reimplements (checked request by request against Envoy 1.40 in
//! `tests/envoy_hcm_limits.rs`):
//! - `.` and `..` segments are resolved, also when written `%2e`/`%2E`; `..` never climbs above the root;
//! - `\` is a `/`;
//! - an escape of an unreserved character (`%41`, `%7e`) is decoded; other escapes keep their spelling (`%2f`
//!   stays lower case, `%2F` upper case), and a `%` that starts no escape stays as it is;
//! - characters a path may not carry (`"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`, space, controls, bytes past
//!   ASCII) are escaped, with upper-case hex;
//! - a NUL, raw or escaped, makes the path invalid: Envoy answers 400.
//!
//! Then `merge_slashes` collapses runs of `/`. Only the path is touched; the query is kept as it came.

use http::request::Parts;
use outrigger_config::model::http::HttpConnectionManager;

/// The request's path could not be normalized (Envoy's `path_normalization_failed`: 400, empty body).
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPath;

/// `normalize_path` or `merge_slashes` on the request's path; `Err` when the path cannot be normalized.
pub fn apply(parts: &mut Parts, hcm: &HttpConnectionManager) -> Result<(), InvalidPath> {
    if !hcm.normalize_path && !hcm.merge_slashes {
        return Ok(());
    }
    let Some(path_and_query) = parts.uri.path_and_query() else {
        return Ok(());
    };
    let Some(normalized) = normalize(
        path_and_query.as_str(),
        hcm.normalize_path,
        hcm.merge_slashes,
    )?
    else {
        return Ok(());
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(normalized.parse().map_err(|_| InvalidPath)?);
    parts.uri = http::Uri::from_parts(uri).map_err(|_| InvalidPath)?;
    Ok(())
}

/// The new path and query, `None` when nothing changes.
pub fn normalize(
    path_and_query: &str,
    normalize_path: bool,
    merge_slashes: bool,
) -> Result<Option<String>, InvalidPath> {
    let (path, query) = match path_and_query.find('?') {
        Some(at) => path_and_query.split_at(at),
        None => (path_and_query, ""),
    };
    let mut new_path = std::borrow::Cow::Borrowed(path);
    if normalize_path {
        new_path = std::borrow::Cow::Owned(canonicalize(path)?);
    }
    if merge_slashes && new_path.contains("//") {
        new_path = std::borrow::Cow::Owned(merge(&new_path));
    }
    Ok((new_path != path).then(|| format!("{new_path}{query}")))
}

/// How the canonicalizer treats one byte of a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Copied as is.
    Pass,
    /// Percent-encoded on the way out.
    Escape,
    /// Copied, and decoded when it arrives escaped (the unreserved characters).
    Unreserved,
    /// Makes the whole path invalid.
    Invalid,
}

fn class(byte: u8) -> Class {
    match byte {
        0 => Class::Invalid,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => Class::Unreserved,
        0x01..=0x20
        | b'"'
        | b'#'
        | b'<'
        | b'>'
        | b'?'
        | b'^'
        | b'`'
        | b'{'
        | b'|'
        | b'}'
        | 0x7f.. => Class::Escape,
        _ => Class::Pass,
    }
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The byte an escape at `at` (`%XY`) stands for.
fn escaped(path: &[u8], at: usize) -> Option<u8> {
    if path.get(at) != Some(&b'%') {
        return None;
    }
    Some(hex(*path.get(at + 1)?)? * 16 + hex(*path.get(at + 2)?)?)
}

/// The length of a dot at `at` (`.` is 1, `%2e` is 3), or 0.
fn dot(path: &[u8], at: usize) -> usize {
    match path.get(at) {
        Some(b'.') => 1,
        Some(b'%') if escaped(path, at) == Some(b'.') => 3,
        _ => 0,
    }
}

fn is_slash(byte: Option<&u8>) -> bool {
    matches!(byte, Some(b'/' | b'\\'))
}

/// What a dot segment means: how much input it covers (dots and the slash after them), and whether it
/// climbs one directory.
fn dot_segment(path: &[u8], at: usize) -> Option<(usize, bool)> {
    let first = dot(path, at);
    if first == 0 {
        return None;
    }
    let after = at + first;
    if after == path.len() {
        return Some((first, false));
    }
    if is_slash(path.get(after)) {
        return Some((first + 1, false));
    }
    let second = dot(path, after);
    if second == 0 {
        return None;
    }
    let end = after + second;
    if end == path.len() {
        Some((first + second, true))
    } else if is_slash(path.get(end)) {
        Some((first + second + 1, true))
    } else {
        None
    }
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[
        b'%',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 15)],
    ]);
}

/// Drops the last segment of `out`, which ends with `/`, keeping the slash before it (never the root's).
fn climb(out: &mut Vec<u8>) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    if last == 0 {
        return;
    }
    let previous = out[..last].iter().rposition(|b| *b == b'/').unwrap_or(0);
    out.truncate(previous + 1);
}

fn canonicalize(path: &str) -> Result<String, InvalidPath> {
    let input = path.as_bytes();
    let mut out = Vec::with_capacity(input.len() + 1);
    if !is_slash(input.first()) {
        out.push(b'/');
    }
    let mut valid = true;
    let mut at = 0;
    while at < input.len() {
        let byte = input[at];
        if out.last() == Some(&b'/')
            && let Some((length, up)) = dot_segment(input, at)
        {
            if up {
                climb(&mut out);
            }
            at += length;
            continue;
        }
        if let Some(length) = Some(dot(input, at)).filter(|l| *l > 0) {
            out.push(b'.');
            at += length;
            continue;
        }
        match byte {
            b'\\' => out.push(b'/'),
            b'%' => match escaped(input, at) {
                Some(value) => {
                    match class(value) {
                        Class::Unreserved => out.push(value),
                        other => {
                            valid &= other != Class::Invalid;
                            out.extend_from_slice(&input[at..at + 3]);
                        }
                    }
                    at += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            _ => match class(byte) {
                Class::Pass | Class::Unreserved => out.push(byte),
                Class::Escape => push_escape(&mut out, byte),
                Class::Invalid => {
                    valid = false;
                    push_escape(&mut out, byte);
                }
            },
        }
        at += 1;
    }
    if !valid {
        return Err(InvalidPath);
    }
    String::from_utf8(out).map_err(|_| InvalidPath)
}

/// Envoy's `merge_slashes`: the non-empty segments joined by one `/`, with the leading and trailing slash kept.
fn merge(path: &str) -> String {
    let lead = if path.starts_with('/') { "/" } else { "" };
    let trail = if path.ends_with('/') { "/" } else { "" };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("{lead}{}{trail}", segments.join("/"))
}

#[cfg(test)]
mod tests;
