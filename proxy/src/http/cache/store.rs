//! The in-memory store: Envoy's `SimpleHttpCache`, one per process and shared by every cache filter (its entries
//! outlive configuration updates, as Envoy's do), but bounded. Envoy's store grows without limit; this one holds
//! at most `MAX_ENTRIES` entries and `MAX_BYTES` bytes, drops the oldest insertions first when full, and does not
//! store a response larger than `MAX_ENTRY_BYTES` (README's feature table says so: the one difference, which
//! only shows under memory pressure).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

pub const MAX_ENTRIES: usize = 10_000;
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    /// When its headers arrived (or were last refreshed by a 304): the start of its resident time.
    pub response_time: SystemTime,
}

impl Entry {
    fn size(&self) -> usize {
        let headers = |h: &HeaderMap| super::super::headers::size(h);
        self.body.len() + headers(&self.headers) + self.trailers.as_ref().map_or(0, headers)
    }
}

/// What a key holds: a response, or (for a response that varies) the names it varies on, whose variants are
/// under keys extended by their vary identifier.
#[derive(Clone, Debug)]
pub enum Slot {
    Response(Arc<Entry>),
    Varies(Vec<String>),
}

impl Slot {
    fn size(&self) -> usize {
        match self {
            Slot::Response(e) => e.size(),
            Slot::Varies(names) => names.iter().map(String::len).sum(),
        }
    }
}

#[derive(Default)]
pub struct Store {
    slots: HashMap<String, (u64, Slot)>,
    /// Keys in insertion order, with the generation they were inserted at (a later insert makes the earlier
    /// position stale).
    order: VecDeque<(String, u64)>,
    bytes: usize,
    generation: u64,
}

/// The process's store.
pub fn shared() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(Store::default()))
}

impl Store {
    pub fn get(&self, key: &str) -> Option<Slot> {
        self.slots.get(key).map(|(_, slot)| slot.clone())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Stores `slot` under `key` (replacing what was there), then drops the oldest insertions past the bounds.
    pub fn insert(&mut self, key: String, slot: Slot) {
        let size = slot.size() + key.len();
        if size > MAX_ENTRY_BYTES {
            return;
        }
        self.remove(&key);
        self.generation += 1;
        self.bytes += size;
        self.order.push_back((key.clone(), self.generation));
        self.slots.insert(key, (self.generation, slot));
        while self.slots.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .slots
                .get(&oldest)
                .is_some_and(|(g, _)| *g == generation)
            {
                self.remove(&oldest);
            }
        }
        // Positions left by replaced entries are dropped once they outnumber the live ones.
        if self.order.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.order
                .retain(|(k, g)| slots.get(k).is_some_and(|(live, _)| live == g));
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, slot)) = self.slots.remove(key) {
            self.bytes -= slot.size() + key.len();
        }
    }

    /// A 304's headers refresh a stored response (not one that varies, as in Envoy): each header the validated
    /// response has replaces the stored one, except those that describe the stored body or its identity.
    pub fn update_headers(&mut self, key: &str, merged: &HeaderMap, now: SystemTime) {
        let Some((_, Slot::Response(entry))) = self.slots.get(key) else {
            return;
        };
        if super::freshness::has_vary(&entry.headers) {
            return;
        }
        let mut headers = entry.headers.clone();
        for name in merged.keys() {
            if matches!(
                name.as_str(),
                "content-range" | "content-length" | "etag" | "vary"
            ) {
                continue;
            }
            headers.remove(name);
            for value in merged.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let entry = Entry {
            status: entry.status,
            headers,
            body: entry.body.clone(),
            trailers: entry.trailers.clone(),
            response_time: now,
        };
        self.insert(key.to_string(), Slot::Response(Arc::new(entry)));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
