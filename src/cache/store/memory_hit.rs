//! Fresh hits held in the memory tier, handed out whole: the header to
//! send and the body, with no `CacheMeta` built and no hit handler.
//!
//! Only the plainest case qualifies, and anything else answers `None` so
//! that the request takes Pingora's cache path: a complete object (no fill
//! or refill in progress for the key), with no variance, fresh at `now`,
//! whose meta a previous hit already decoded and whose body the memory tier
//! holds.

use super::DiskStore;
use super::hit::INLINE_MAX;
use super::index::Found;
use bytes::Bytes;
use pingora_cache::CacheEntryKey;
use pingora_cache::eviction::CacheEntryId;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_http::ResponseHeader;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// A fresh object, ready to send.
pub struct MemoryHit {
    /// A copy of the stored response header.
    pub header: ResponseHeader,
    /// Time since the object was stored or last revalidated (`Age`).
    pub age: Duration,
    pub body: Bytes,
    /// What the eviction manager is told of the access.
    pub entry: CacheEntryKey,
    pub weight: usize,
    pub fresh_until: SystemTime,
}

impl DiskStore {
    /// The object of `key` when it is fresh at `now`, in memory, and its
    /// stored header is one the caller can `send`.
    pub fn memory_hit(
        &self,
        key: &CacheKey,
        now: SystemTime,
        send: impl Fn(&ResponseHeader) -> bool,
    ) -> Option<MemoryHit> {
        let found = self.lock_index().lookup(&key.combined_bin())?;
        let Found::Complete(c) = found else {
            return None;
        };
        if c.body_len > INLINE_MAX {
            return None;
        }
        let view = c.meta.view()?;
        // Pingora's check (`CacheMeta::is_fresh`): fresh up to and at
        // `fresh_until`.
        if view.variance.is_some() || view.fresh_until < now || !send(view.header) {
            return None;
        }
        let body = self.lock_memory().get(&c.key, c.id)?;
        self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(MemoryHit {
            header: view.header.clone(),
            age: now.duration_since(view.epoch).unwrap_or_default(),
            body,
            entry: CacheEntryKey::identified(c.compact.clone(), CacheEntryId::new(c.id)),
            weight: usize::try_from(c.weight()).unwrap_or(usize::MAX),
            fresh_until: view.fresh_until,
        })
    }
}
