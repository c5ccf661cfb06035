//! The headers of a request or response that are read after it has gone on (access-log operators, filters,
//! Istio's labels, a sampled span's tags): copied in one pass over the message's headers when the record is
//! filled. A copy of the whole `HeaderMap` cost every logged request two allocations, and each look-up by name
//! then hashed the name again (scenario (i) of `benches/`).

use http::{HeaderMap, HeaderName, HeaderValue};

/// A few headers, in the order the message had them (repeated names kept). (Kept inline, they made the record
/// too large for the allocator's per-thread cache, which cost more than the allocation they saved.)
#[derive(Clone, Debug, Default)]
pub struct Captured(Vec<(HeaderName, HeaderValue)>);

impl Captured {
    /// The headers of `all` named in any of `wanted`.
    pub fn of(all: &HeaderMap, wanted: &[&[HeaderName]]) -> Self {
        // A name whose length no wanted name has is passed over without comparing it to each.
        let lengths = wanted
            .iter()
            .flat_map(|names| names.iter())
            .fold(0u64, |mask, name| mask | length_bit(name));
        let mut kept = Vec::new();
        for (name, value) in all {
            if lengths & length_bit(name) != 0 && wanted.iter().any(|names| names.contains(name)) {
                kept.push((name.clone(), value.clone()));
            }
        }
        Captured(kept)
    }

    /// Every header of `all`.
    pub fn all(all: &HeaderMap) -> Self {
        Captured(
            all.iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The first value of `name`, if it is visible ASCII.
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name)?.to_str().ok()
    }

    /// Sets `name` to `value` alone (as `HeaderMap::insert`).
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }
}

/// A bit for the length of `name` (names of 63 bytes and more share the last).
fn length_bit(name: &HeaderName) -> u64 {
    1 << name.as_str().len().min(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wanted_headers_are_kept_with_their_repeats() {
        let mut all = HeaderMap::new();
        all.append("user-agent", HeaderValue::from_static("curl"));
        all.append("x-a", HeaderValue::from_static("1"));
        all.append("x-a", HeaderValue::from_static("2"));
        all.append("x-other", HeaderValue::from_static("no"));
        let x_a = HeaderName::from_static("x-a");
        let captured = Captured::of(
            &all,
            &[&[http::header::USER_AGENT], std::slice::from_ref(&x_a)],
        );
        assert_eq!(captured.get_str(&x_a), Some("1"));
        assert_eq!(captured.get_str(&http::header::USER_AGENT), Some("curl"));
        assert_eq!(captured.get(&HeaderName::from_static("x-other")), None);
        assert_eq!(captured.0.len(), 3);
        let mut captured = captured;
        captured.insert(x_a.clone(), HeaderValue::from_static("3"));
        assert_eq!(captured.get_str(&x_a), Some("3"));
        assert_eq!(captured.0.len(), 2);
        assert_eq!(Captured::all(&all).0.len(), 4);
    }
}
