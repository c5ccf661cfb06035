//! Which encoding a response gets, from the request's `Accept-Encoding` and the response's content type: one
//! decision for every compressor filter of the chain, as Envoy 1.40 makes it (each filter then only asks whether
//! the choice is its own encoding, and counts the `header_*` statistic the decision names).

use std::collections::BTreeMap;

/// One compressor filter of the chain, as the decision sees it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub encoding: &'static str,
    /// Lower case, never empty (Envoy's default list when none is configured).
    pub content_types: Vec<String>,
    pub choose_first: bool,
}

/// The statistic a decision counts in each filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A compressor's encoding won: `header_compressor_used` in its filter, `..._overshadowed` in the others.
    Compressor,
    Identity,
    Wildcard,
    NotValid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The winning encoding (`identity` when none).
    pub encoding: String,
    pub reason: Reason,
}

impl Decision {
    fn identity(reason: Reason) -> Self {
        Decision {
            encoding: "identity".to_string(),
            reason,
        }
    }
}

/// The media type of a `content-type` value: before any `;`, trimmed, lower case.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Envoy's choice: the compressors that may compress this content type, in chain order (the first of each
/// encoding), less those the client refuses with `q=0`; then the accepted coding with the highest q-value
/// (a tie goes to the earlier one, unless the later is a `choose_first` compressor); `*` takes the first
/// compressor of the chain.
pub fn choose(accept_encoding: &str, content_type: Option<&str>, peers: &[Peer]) -> Decision {
    let media = content_type.map(media_type).filter(|m| !m.is_empty());
    // Encoding -> (registration order, choose_first). Envoy keys a sorted map by the encoding, and a look-up of
    // `identity` or `*` in it adds an entry (order 0): that entry can then be the "first" compressor of `*`.
    let mut allowed: BTreeMap<String, (u32, bool)> = BTreeMap::new();
    let mut order = 0;
    for peer in peers {
        if let Some(media) = &media
            && !peer.content_types.iter().any(|t| t == media)
        {
            continue;
        }
        if !allowed.contains_key(peer.encoding) {
            allowed.insert(peer.encoding.to_string(), (order, peer.choose_first));
            order += 1;
        }
    }
    let mut pairs: Vec<(&str, f32)> = Vec::new();
    for token in accept_encoding.split(',').filter(|t| !t.is_empty()) {
        let (name, params) = match token.split_once(';') {
            Some((name, params)) => (name.trim(), Some(params)),
            None => (token.trim(), None),
        };
        let mut q = 1.0_f32;
        if let Some((key, value)) = params.and_then(|p| p.split_once('='))
            && key.trim().eq_ignore_ascii_case("q")
        {
            match value.trim().parse::<f32>() {
                Ok(value) => q = value,
                // An unparsable q-value drops the coding.
                Err(_) => continue,
            }
        }
        pairs.push((name, q));
        if q == 0.0 {
            allowed.remove(name);
        }
    }
    if pairs.is_empty() || allowed.is_empty() {
        return Decision::identity(Reason::NotValid);
    }
    let mut choice: (&str, f32) = ("identity", 0.0);
    for &(name, q) in &pairs {
        if allowed.contains_key(name) || name == "identity" || name == "*" {
            let wins = q > choice.1
                || (q == choice.1 && allowed.entry(name.to_string()).or_insert((0, false)).1);
            if wins {
                choice = (name, q);
            }
        }
    }
    if choice.1 == 0.0 || choice.1.is_nan() {
        return Decision::identity(Reason::NotValid);
    }
    match choice.0 {
        "identity" => Decision::identity(Reason::Identity),
        "*" => {
            // The earliest registered; among equals, the first in the map's (sorted) order.
            let first = allowed
                .iter()
                .min_by_key(|(_, (order, _))| *order)
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| "identity".to_string());
            Decision {
                encoding: first,
                reason: Reason::Wildcard,
            }
        }
        name => Decision {
            encoding: name.to_string(),
            reason: Reason::Compressor,
        },
    }
}
