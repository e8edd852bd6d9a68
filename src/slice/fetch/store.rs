//! The store's side of slice fetches: writing a slice's fill, storing
//! small entries whole, and admitting what is stored for eviction.

use std::time::SystemTime;

use bytes::Bytes;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{MissFinishType, MissHandler, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};

use super::{FetchError, failed};
use crate::cache::engine::Engine;

/// Writes into the slice's fill, refusing more than the slice holds.
pub(super) struct Filler {
    pub(super) miss: MissHandler,
    pub(super) written: u64,
    pub(super) len: u64,
}

impl Filler {
    pub(super) async fn write(&mut self, chunk: Bytes) -> Result<(), FetchError> {
        self.written += chunk.len() as u64;
        if self.written > self.len {
            return Err(failed("origin sent more than the slice"));
        }
        self.miss
            .write_body(chunk, self.written == self.len)
            .await
            .map_err(|e| failed(format!("slice store: {e}")))
    }
}

/// Tells the eviction manager about a new entry and removes what it evicts.
pub async fn admit(
    engine: &'static Engine,
    key: &CacheKey,
    entry_id: Option<pingora_cache::eviction::CacheEntryId>,
    size: usize,
    fresh_until: SystemTime,
) {
    let entry = CacheEntryKey::from_entry_id(key.to_compact(), entry_id);
    let evicted = engine.eviction.admit(entry, size, fresh_until);
    let span = Span::inactive();
    for item in evicted {
        if let Err(e) = engine
            .store
            .purge(
                PurgeTarget::Exact(&item),
                PurgeType::Eviction,
                &span.handle(),
            )
            .await
        {
            tracing::warn!(error = %e, "could not evict a cached object");
        }
    }
}

/// Stores a small entry at once, body and all (an object's record has no
/// body; a whole object a probe brought has one), and admits it for
/// eviction. A failure only means it is not kept.
pub async fn store_entry(
    engine: &'static Engine,
    key: &CacheKey,
    meta: &CacheMeta,
    body: Option<Bytes>,
) {
    let span = Span::inactive();
    let stored = async {
        let mut miss = engine
            .store
            .get_miss_handler(key, meta, &span.handle())
            .await?;
        if let Some(body) = body {
            miss.write_body(body, true).await?;
        }
        let entry_id = miss.entry_id();
        let finished = miss.finish().await?;
        Ok::<_, Box<pingora::Error>>((entry_id, finished))
    };
    match stored.await {
        Ok((entry_id, MissFinishType::Created(size) | MissFinishType::Appended(size, _))) => {
            admit(engine, key, entry_id, size, meta.fresh_until()).await;
        }
        Err(e) => tracing::debug!(error = %e, "could not store a cache entry"),
    }
}
