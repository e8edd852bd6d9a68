//! Fresh hits held in memory, handed out whole: the header to send and the
//! body, with no `CacheMeta` built and no hit handler.
//!
//! Only the plainest case qualifies, and anything else answers `None` so
//! that the request takes Pingora's cache path: a complete object (no fill
//! or refill in progress for the key), with no variance, fresh at `now`,
//! whose meta a previous hit already decoded and whose body the memory tier
//! holds. A hot one is answered from then on from the thread's own copy
//! (`thread_copies`), without the index. A caller that can send a file
//! (`sendfile`) may be handed a larger object's body file instead
//! ([`super::file_hit`]).

use super::DiskStore;
use super::file_hit::{FileHit, Held, Source};
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
        Ok(
            match self.fresh_hit(key, now, send, prepare, Source::Memory)? {
                Some(Held::Memory(hit)) => Some(hit),
                Some(Held::File(_)) | None => None,
            },
        )
    }

    /// As [`DiskStore::memory_hit`], from where `source` says. From a
    /// file, an object too large for memory (above `memory_object_max` and
    /// [`INLINE_MAX`]) whose body file the page cache holds whole is handed
    /// out as that file ([`Held::File`]): sent with `sendfile`, its bytes
    /// are never copied by the process. The bodies an operator gave memory
    /// to are written from memory, and small ones are written faster from
    /// there anyway (a thread's copy, without the index).
    pub fn fresh_hit(
        &self,
        key: &CacheKey,
        now: SystemTime,
        send: impl Fn(&ResponseHeader) -> bool,
        prepare: impl FnOnce(&mut ResponseHeader) -> Result<()>,
        source: Source,
    ) -> Result<Option<Held>> {
        let hash = key.combined_bin();
        if source != Source::File
            && let Some(hit) = self.thread_copies.hit(&hash, now)
        {
            self.counters.memory_hits.add(1);
            return Ok(Some(Held::Memory(hit)));
        }
        let Some(Found::Complete(c)) = self.lock_index().lookup(&hash) else {
            return Ok(None);
        };
        // What memory may hold is written from memory (or read, until it
        // is copied there); only larger bodies are sent from their files.
        let from_file =
            source != Source::Memory && c.body_len > self.config.memory_object_max.max(INLINE_MAX);
        if !from_file && (source == Source::File || c.body_len > self.config.memory_object_max) {
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
        let accesses = || Accesses {
            entry: c.eviction_key(),
            weight: c.eviction_weight(),
            requests: 1,
        };
        let age = now.duration_since(view.epoch).unwrap_or_default();
        if from_file {
            let Some(file) = self.cached_body(&c) else {
                return Ok(None);
            };
            let mut header = view.header.clone();
            prepare(&mut header)?;
            return Ok(Some(Held::File(FileHit {
                header,
                age,
                body: file,
                accesses: accesses(),
            })));
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
            return Ok(Some(Held::Memory(hit)));
        }
        Ok(Some(Held::Memory(MemoryHit {
            header: Arc::new(header),
            wire: None,
            age,
            body,
            accesses: Some(accesses()),
        })))
    }
}
