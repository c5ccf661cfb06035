//! A `range` request answered from a stored response, as Envoy 1.40's cache filter answers it (checked with
//! real Envoy): one byte range only (more, or another unit, and the whole response is sent with its status); a
//! range that covers everything is the whole response too; a range past the end is 416 with
//! `content-range: bytes */<length>`.

/// What to send of a stored body of `length` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    Whole,
    /// Bytes `start..end` (206).
    Range(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// One `first-last`, `first-` or `-suffix` spec.
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

fn parse(value: &str) -> Option<Spec> {
    let specs = value.strip_prefix("bytes=")?;
    // Envoy parses at most one range; a list is not a range request to it.
    if specs.contains(',') {
        return None;
    }
    let (first, last) = specs.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        return number(last).map(Spec::Suffix);
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = number(last)?;
    (last >= first).then_some(Spec::From(first, Some(last)))
}

/// The part of a stored body of `length` bytes a `range` header asks for.
pub fn part(range: Option<&str>, length: u64) -> Part {
    let Some(spec) = range.and_then(parse) else {
        return Part::Whole;
    };
    if length == 0 {
        return Part::Unsatisfiable;
    }
    match spec {
        Spec::Suffix(0) => Part::Unsatisfiable,
        Spec::Suffix(n) if n >= length => Part::Whole,
        Spec::Suffix(n) => Part::Range(length - n, length),
        Spec::From(first, _) if first >= length => Part::Unsatisfiable,
        Spec::From(0, last) if last.is_none_or(|l| l >= length - 1) => Part::Whole,
        Spec::From(first, last) => match last {
            Some(l) if l < length - 1 => Part::Range(first, l + 1),
            _ => Part::Range(first, length),
        },
    }
}
