//! Fresh hits held in memory, handed out whole: the header to send and the
//! body, with no `CacheMeta` built and no hit handler.
//!
//! Only the plainest case qualifies, and anything else answers `None` so
//! that the request takes Pingora's cache path: a complete object (no fill
//! or refill in progress for the key), with no variance, fresh at `now`,
//! whose meta a previous hit already decoded and whose body the memory tier
//! holds. A hot one is answered from then on from the thread's own copy
//! (`thread_copies`), without the index.

use super::DiskStore;
use super::hit::INLINE_MAX;
use super::index::Found;
use super::thread_copies::ThreadCopy;
use super::wire::Wire;
use bytes::Bytes;
use pingora_cache::CacheEntryKey;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A fresh object, ready to send.
pub struct MemoryHit {
    /// The stored response header, with what the caller's `prepare` added:
    /// shared with the thread's copy, copied only by a caller that edits it.
    pub header: Arc<ResponseHeader>,
    /// The header's HTTP/1 form, kept by a thread's copy (see [`Wire`]).
    pub wire: Option<Arc<Wire>>,
    /// Time since the object was stored or last revalidated (`Age`).
    pub age: Duration,
    pub body: Bytes,
    /// Requests to tell the eviction manager of now, if any: a thread's
    /// copy tells them in batches.
    pub accesses: Option<Accesses>,
}

/// What the eviction manager is told of accesses to an object.
pub struct Accesses {
    pub entry: CacheEntryKey,
    pub weight: usize,
    /// How many requests they were.
    pub requests: u32,
}

impl DiskStore {
    /// The object of `key` when it is fresh at `now`, in memory, and its
    /// stored header is one the caller can `send`. The header handed out is
    /// the stored one after `prepare`, which adds what every hit of it
    /// carries. A thread's copy is asked `send` and prepared once, when it
    /// is made: both must be the same rule on every call.
    pub fn memory_hit(
        &self,
        key: &CacheKey,
        now: SystemTime,
        send: impl Fn(&ResponseHeader) -> bool,
        prepare: impl FnOnce(&mut ResponseHeader) -> Result<()>,
    ) -> Result<Option<MemoryHit>> {
        let hash = key.combined_bin();
        if let Some(hit) = self.thread_copies.hit(&hash, now) {
            self.counters.memory_hits.add(1);
            return Ok(Some(hit));
        }
        let Some(Found::Complete(c)) = self.lock_index().lookup(&hash) else {
            return Ok(None);
        };
        if c.body_len > self.config.memory_object_max {
            return Ok(None);
        }
        let Some(view) = c.meta.view() else {
            return Ok(None);
        };
        // Pingora's check (`CacheMeta::is_fresh`): fresh up to and at
        // `fresh_until`.
        if view.variance.is_some() || view.fresh_until < now || !send(view.header) {
            return Ok(None);
        }
        let Some((body, hot)) = self
            .lock_memory()
            .get(&c.key, Some(c.id))
            .map(|held| (held.value.clone(), held.hot))
        else {
            return Ok(None);
        };
        self.counters.memory_hits.add(1);
        let mut header = view.header.clone();
        prepare(&mut header)?;
        // A retired object is still the index's answer after an abandoned
        // fill, but a copy of it would never answer.
        // Threads copy small bodies only: a large one is not written faster
        // from a thread's own memory.
        if hot
            && body.len() as u64 <= INLINE_MAX
            && self.thread_copies.enabled()
            && !c.retired.is_set()
            && self.thread_copies.admits(body.len(), now)
        {
            let (copy, hit) = ThreadCopy::new(c.clone(), &view, &header, &body, now);
            self.thread_copies.keep(c.key, copy, now);
            return Ok(Some(hit));
        }
        Ok(Some(MemoryHit {
            header: Arc::new(header),
            wire: None,
            age: now.duration_since(view.epoch).unwrap_or_default(),
            body,
            accesses: Some(Accesses {
                entry: c.eviction_key(),
                weight: c.eviction_weight(),
                requests: 1,
            }),
        }))
    }
}
