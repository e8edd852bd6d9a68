//! Read-ahead: after each slice served, the next ones are fetched in the
//! background; whether each was then used or wasted is counted.

use std::collections::{HashSet, VecDeque};
use std::ops::RangeInclusive;

use pingora_cache::CacheKey;

use super::info::ObjectInfo;
use super::{Request, Slicer, key_text, lock};
use crate::cache::key::slice as keys;
use crate::metrics::Metrics;

/// How many read-ahead slices are remembered to be counted when used.
const READ_AHEAD_MEMORY: usize = 4096;

#[derive(Default)]
pub(super) struct ReadAhead {
    keys: HashSet<String>,
    order: VecDeque<String>,
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
