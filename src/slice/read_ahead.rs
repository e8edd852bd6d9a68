//! Read-ahead: after each slice served, the next ones are fetched in the
//! background; whether each was then used or wasted is counted.
//!
//! Only where the reading is sequential: within the span the request asks
//! for (a whole object, an open range `bytes=N-`, or a long closed one),
//! and beyond it only when the request starts where an earlier request for
//! the object ended (a player reading on in closed ranges). Ranges read at
//! random places get no read-ahead past their end: it would be fetched and
//! not read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;

use pingora_cache::CacheKey;

use super::info::ObjectInfo;
use super::{Request, Slicer, key_text, lock};
use crate::cache::key::slice as keys;
use crate::metrics::Metrics;

/// How many read-ahead slices are remembered to be counted when used.
const READ_AHEAD_MEMORY: usize = 4096;
/// How many objects' reading positions are remembered.
const READERS_MEMORY: usize = 4096;
/// Reading positions remembered per object (one per client reading on).
const ENDS_PER_OBJECT: usize = 8;

#[derive(Default)]
pub(super) struct ReadAhead {
    keys: HashSet<String>,
    order: VecDeque<String>,
    /// Where recent requests for each object (by primary key) ended.
    ends: HashMap<String, VecDeque<u64>>,
}

impl ReadAhead {
    /// Remembers that a request for `primary` read `[start, end)`; true
    /// when it starts where an earlier one ended.
    fn reads_on(&mut self, primary: &str, start: u64, end: u64) -> bool {
        if self.ends.len() >= READERS_MEMORY && !self.ends.contains_key(primary) {
            self.ends.clear();
        }
        let ends = self.ends.entry(primary.to_string()).or_default();
        let on = match ends.iter().position(|&e| e == start) {
            Some(i) => {
                ends.remove(i);
                true
            }
            None => false,
        };
        if ends.len() == ENDS_PER_OBJECT {
            ends.pop_front();
        }
        ends.push_back(end);
        on
    }
}

impl Request {
    /// Starts background fetches of the slices in `next` not yet stored.
    pub(super) fn read_ahead(&self, info: &ObjectInfo, prefix: &str, next: RangeInclusive<u64>) {
        for n in next {
            let key = keys::slice_at(prefix, n);
            if self.engine.store.contains(&key) {
                continue;
            }
            let text = key_text(&key);
            if lock(&self.slicer.inflight).contains_key(text) {
                continue;
            }
            self.slicer.remember_read_ahead(text, &self.metrics);
            let _ = self.slicer.start(self, info, key, n, "read_ahead", None);
        }
    }
}

impl Slicer {
    /// The last slice read-ahead may reach for a request reading
    /// `[start, end)` of an object of `slices` slices: the span's own last
    /// slice, or the object's when the request reads on from an earlier one.
    pub(super) fn read_ahead_until(&self, primary: &str, span: (u64, u64), slices: u64) -> u64 {
        let (start, end) = span;
        let own_last = end.saturating_sub(1) / self.config.size;
        if lock(&self.read_ahead).reads_on(primary, start, end) {
            slices.saturating_sub(1)
        } else {
            own_last
        }
    }

    pub(super) fn remember_read_ahead(&self, key: &str, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        if ra.keys.insert(key.to_string()) {
            ra.order.push_back(key.to_string());
        }
        while ra.order.len() > READ_AHEAD_MEMORY {
            if let Some(old) = ra.order.pop_front()
                && ra.keys.remove(&old)
            {
                metrics
                    .slices
                    .read_ahead
                    .with_label_values(&["wasted"])
                    .inc();
            }
        }
    }

    /// A request read slice `key`: if read-ahead brought it, it was used.
    pub(super) fn used(&self, key: &CacheKey, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        if ra.keys.is_empty() {
            return;
        }
        let key = key_text(key);
        if ra.keys.remove(key) {
            ra.order.retain(|k| k != key);
            metrics.slices.read_ahead.with_label_values(&["used"]).inc();
        }
    }

    /// Slices under `prefix` are being dropped: read-ahead ones never used
    /// were wasted.
    pub(super) fn forget_read_ahead(&self, prefix: &str, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        let before = ra.keys.len();
        ra.keys.retain(|k| !k.starts_with(prefix));
        let gone = before - ra.keys.len();
        if gone > 0 {
            ra.order.retain(|k| !k.starts_with(prefix));
            metrics
                .slices
                .read_ahead
                .with_label_values(&["wasted"])
                .inc_by(gone as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_on_only_from_where_an_earlier_one_ended() {
        let mut ra = ReadAhead::default();
        // (object, start, end, reads on)
        let steps: &[(&str, u64, u64, bool)] = &[
            ("a", 0, 100, false),
            ("a", 100, 200, true),
            ("a", 100, 300, false),
            ("b", 200, 300, false),
            ("a", 300, 400, true),
            ("a", 5000, 6000, false),
            ("a", 400, 500, true),
            ("a", 6000, 7000, true),
        ];
        for &(object, start, end, on) in steps {
            assert_eq!(
                ra.reads_on(object, start, end),
                on,
                "{object} {start}-{end}"
            );
        }
    }

    #[test]
    fn each_object_keeps_a_bounded_number_of_positions() {
        let mut ra = ReadAhead::default();
        for i in 0..(ENDS_PER_OBJECT as u64 + 1) {
            ra.reads_on("a", i * 1000, i * 1000 + 10);
        }
        assert_eq!(ra.ends["a"].len(), ENDS_PER_OBJECT);
        // The oldest position was let go.
        assert!(!ra.reads_on("a", 10, 20));
        assert!(ra.reads_on("a", 8010, 9000));
    }
}
