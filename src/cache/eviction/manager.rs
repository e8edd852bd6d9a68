//! [`Manager`]: the eviction manager Pingora's cache calls, one mutex around
//! the policy, and counters mirrored for metrics without the lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use pingora_cache::eviction::EvictionManager;
#[cfg(test)]
use pingora_cache::key::CompactCacheKey;
use pingora_cache::{CacheEntryKey, CacheEntryKeyRef};
use pingora_error::Result;

use super::DEFAULT_MEAN_OBJECT_SIZE;
use super::fingerprint::fingerprint;
use super::policy::Inner;
use super::sketch;

/// Bounds of the expected item count the sketch is sized for.
const EXPECTED_ITEMS_RANGE: (usize, usize) = (1 << 10, 1 << 26);

/// Byte-bounded, scan-resistant W-TinyLFU eviction manager (see the module
/// docs).
pub struct Manager {
    inner: Mutex<Inner>,
    capacity: usize,
    // Mirrors of the locked state, so metrics never take the lock.
    total_size: AtomicUsize,
    total_items: AtomicUsize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
}

impl Manager {
    /// A manager for `capacity_bytes`, with the sketch sized for objects of
    /// [`DEFAULT_MEAN_OBJECT_SIZE`] on average.
    pub fn new(capacity_bytes: usize) -> Self {
        Self::with_expected_items(capacity_bytes, capacity_bytes / DEFAULT_MEAN_OBJECT_SIZE)
    }

    /// A manager for `capacity_bytes` whose frequency sketch is sized for
    /// about `expected_items` distinct objects (clamped to 1 Ki..64 Mi; the
    /// sketch takes 2 bytes per item, rounded up to a power of two). Size it
    /// for the number of objects the cache holds: a smaller sketch ages
    /// faster and mixes up more keys.
    pub fn with_expected_items(capacity_bytes: usize, expected_items: usize) -> Self {
        let expected = expected_items.clamp(EXPECTED_ITEMS_RANGE.0, EXPECTED_ITEMS_RANGE.1);
        Manager {
            inner: Mutex::new(Inner::new(capacity_bytes, expected)),
            capacity: capacity_bytes,
            total_size: AtomicUsize::new(0),
            total_items: AtomicUsize::new(0),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
        }
    }

    /// `access` for `requests` requests at once: the key's frequency counts
    /// each of them (up to the counters' ceiling), its recency is refreshed
    /// once. For callers that gather hits before they tell them.
    pub fn access_counted(&self, item: &CacheEntryKey, size: usize, requests: u32) -> bool {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        for _ in 0..requests.clamp(1, sketch::MAX_COUNT as u32) {
            inner.sketch.increment(fp);
        }
        if let Some(idx) = inner.find_exact(fp, item.into()) {
            inner.touch(idx);
            return true;
        }
        let size = size.max(1);
        if !inner.map.contains_key(&fp) && size <= inner.capacity {
            let _ = inner.insert(item.clone(), fp, size);
            self.publish(&inner);
        }
        false
    }

    /// The byte capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes of the frequency sketch.
    pub fn sketch_bytes(&self) -> usize {
        self.lock().sketch.memory_bytes()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation leaves the structures consistent before it can
        // panic, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish the counters; called with the lock held.
    fn publish(&self, inner: &Inner) {
        self.total_size.store(inner.total(), Ordering::Relaxed);
        self.total_items.store(inner.items(), Ordering::Relaxed);
        self.evicted_size
            .store(inner.evicted_size, Ordering::Relaxed);
        self.evicted_items
            .store(inner.evicted_items, Ordering::Relaxed);
    }

    /// Drop whatever is tracked under `fp` and return `key` itself: it does
    /// not fit. The other entry of the same logical key goes too (the new
    /// fill replaced it in storage).
    fn reject(
        inner: &mut Inner,
        key: CacheEntryKey,
        fp: u64,
        size: usize,
        out: &mut Vec<CacheEntryKey>,
    ) {
        if let Some(&idx) = inner.map.get(&fp) {
            if inner.node(idx).key == key {
                inner.unlink(idx);
                inner.release(idx);
            } else {
                inner.evict(idx, out);
            }
        }
        inner.evicted(key, size, out);
    }

    #[cfg(test)]
    pub(super) fn frequency(&self, key: &CompactCacheKey) -> u8 {
        self.lock().sketch.frequency(fingerprint(key))
    }

    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        self.lock().check_invariants();
    }
}

#[async_trait]
impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.total_size.load(Ordering::Relaxed)
    }

    fn total_items(&self) -> usize {
        self.total_items.load(Ordering::Relaxed)
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Ordering::Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Ordering::Relaxed)
    }

    fn admit(
        &self,
        item: CacheEntryKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CacheEntryKey> {
        let size = size.max(1);
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        inner.sketch.increment(fp);
        let mut out = Vec::new();
        if size > inner.capacity {
            Self::reject(&mut inner, item, fp, size, &mut out);
        } else {
            inner.place(item, fp, size, &mut out);
        }
        // Also when rejecting: an `access` may have left the cache over.
        inner.rebalance(&mut out);
        self.publish(&inner);
        out
    }

    fn increment_weight(
        &self,
        item: &CacheEntryKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CacheEntryKey> {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        let mut out = Vec::new();
        let size = match inner.find_exact(fp, item.into()) {
            Some(idx) => {
                let old = inner.node(idx).size;
                let grown = old.saturating_add(delta);
                max_weight.map_or(grown, |max| grown.min(max).max(old))
            }
            None => {
                // A new entry: one request, like `admit`.
                inner.sketch.increment(fp);
                max_weight.map_or(delta, |max| delta.min(max)).max(1)
            }
        };
        if size > inner.capacity {
            Self::reject(&mut inner, item.clone(), fp, size, &mut out);
        } else {
            inner.place(item.clone(), fp, size, &mut out);
        }
        inner.rebalance(&mut out);
        self.publish(&inner);
        out
    }

    fn remove(&self, item: CacheEntryKeyRef<'_>) {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        if let Some(idx) = inner.find_exact(fp, item) {
            inner.unlink(idx);
            inner.release(idx);
            self.publish(&inner);
        }
    }

    fn access(&self, item: &CacheEntryKey, size: usize, _fresh_until: SystemTime) -> bool {
        self.access_counted(item, size, 1)
    }

    fn peek(&self, item: &CacheEntryKey) -> bool {
        let fp = fingerprint(item.key());
        self.lock().find_exact(fp, item.into()).is_some()
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        self.save_sketch(dir_path).await
    }

    async fn load(&self, dir_path: &str) -> Result<()> {
        self.load_sketch(dir_path).await
    }
}
