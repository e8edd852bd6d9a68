//! `pingora_cache::storage::Storage` for `DiskStore`: lookups, miss
//! handlers, purges and header rewrites.

use super::error::{pingora_err, pingora_io};
use super::fill::Fill;
use super::format;
use super::format::BODY_PREAMBLE_LEN;
use super::hit::{DiskHit, INLINE_MAX};
use super::index::{Complete, Found};
use super::stored_meta::StoredMeta;
use super::{DiskStore, files};
use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::CacheMeta;
use pingora_cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora_cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora_cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_error::Result;
use std::any::Any;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

type Hit = Option<(CacheMeta, HitHandler)>;

impl DiskStore {
    fn hit_from_fill(&self, fill: Arc<Fill>) -> Result<Hit> {
        let meta = fill.meta.decode()?;
        Ok(Some((meta, Box::new(DiskHit::fill(fill)))))
    }

    /// A hit on a committed object, or `None` when its files turn out to be
    /// missing or invalid (then it is dropped from the index and the disk).
    /// `copy_large`: whether a body above `INLINE_MAX` may be copied into
    /// memory (not for slices, which the slicer streams to many readers).
    async fn hit_from_complete(&'static self, c: Arc<Complete>, copy_large: bool) -> Result<Hit> {
        let meta = match c.meta.decode() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, id = c.id, "cache store: undecodable meta, dropping object");
                self.drop_broken(&c).await;
                return Ok(None);
            }
        };
        let (key, id, len) = (c.key, c.id, c.body_len);
        let weight = c.eviction_weight();
        let copied = len <= self.config.memory_object_max;
        if copied
            && let Some(body) = self
                .lock_memory()
                .get(&key, Some(id))
                .map(|held| held.value.clone())
        {
            self.counters.memory_hits.add(1);
            let hit = DiskHit::complete_inline(body, id, weight);
            return Ok(Some((meta, Box::new(hit))));
        }
        // Opening (and, for a small object, reading) a page-cached file
        // takes microseconds: done here, without a hand-off to the blocking
        // pool, which would cost more than the work (see `hit`).
        let opened = files::open_body(&self.layout, &key, id, len).and_then(|file| {
            let body = if len <= INLINE_MAX {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, BODY_PREAMBLE_LEN)?;
                Some(Bytes::from(buf))
            } else {
                None
            };
            Ok((file, body))
        });
        match opened {
            Ok((_file, Some(body))) => {
                // Read from disk: the next hits take it from memory.
                if copied {
                    self.lock_memory().put(key, id, body.clone());
                }
                let hit = DiskHit::complete_inline(body, c.id, weight);
                Ok(Some((meta, Box::new(hit))))
            }
            Ok((file, None)) => {
                let hit = DiskHit::complete(Arc::new(file), c.body_len, c.id, weight);
                // A larger body is copied on its second read, and read
                // whole for it: one read instead of the chunks' as many.
                if copied && copy_large && self.lock_memory().read_before(key, id) {
                    let body = hit.read_whole().await?;
                    self.lock_memory().put(key, id, body.clone());
                    let hit = DiskHit::complete_inline(body, c.id, weight);
                    return Ok(Some((meta, Box::new(hit))));
                }
                Ok(Some((meta, Box::new(hit))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, id = c.id, "cache store: bad body file, dropping object");
                self.drop_broken(&c).await;
                Ok(None)
            }
        }
    }

    async fn drop_broken(&'static self, c: &Complete) {
        if self
            .lock_index()
            .remove_complete(&c.key, Some(c.id), false)
            .is_some()
        {
            self.delete_objects(vec![(c.key, c.id)], self.config.durable)
                .await;
        }
    }

    async fn lookup_hash(&'static self, hash: &HashBinary, copy_large: bool) -> Result<Hit> {
        // A second try covers an object replaced between index and open.
        for _ in 0..2 {
            let found = self.lock_index().lookup(hash);
            match found {
                None => return Ok(None),
                Some(Found::Fill(fill)) => return self.hit_from_fill(fill),
                Some(Found::Complete(c)) => {
                    if let Some(hit) = self.hit_from_complete(c, copy_large).await? {
                        return Ok(Some(hit));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Storage for DiskStore {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> Result<Hit> {
        let copy_large = !crate::cache::key::slice::is_slice(key.primary_key());
        self.lookup_hash(&key.combined_bin(), copy_large).await
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Hit> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let id = <[u8; 8]>::try_from(tag)
            .map(u64::from_be_bytes)
            .map_err(|_| pingora_err("cache store: malformed streaming write tag"))?;
        let found = self.lock_index().by_id(&key.combined_bin(), id);
        match found {
            Some(Found::Fill(fill)) => self.hit_from_fill(fill),
            Some(Found::Complete(c)) => match self.hit_from_complete(c, false).await? {
                Some(hit) => Ok(Some(hit)),
                None => Err(pingora_err("cache store: the fill's object is gone")),
            },
            // Never `None` for a tag: Pingora panics on it. The fill failed.
            None => Err(pingora_err(format!(
                "cache store: no fill {id:016x} in progress for this key"
            ))),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(self.start_fill(key, meta).await?))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined_bin();
        let removed = match target {
            // Every entry of this store has an id: a key-only identity
            // matches none of them (it may be a stale record of an old fill).
            PurgeTarget::Exact(CacheEntryKey::KeyOnly(_)) => return Ok(PurgeOutcome::NotFound),
            PurgeTarget::Exact(CacheEntryKey::Identified { id, .. }) => {
                let entry_id = *id;
                let mut index = self.lock_index();
                match index.remove_complete(&hash, Some(entry_id.get()), false) {
                    Some(c) => Some(c),
                    // A fill in progress: it will not be committed.
                    None if index.doom_fill(&hash, entry_id.get()) => {
                        return Ok(PurgeOutcome::Purged(Some(entry_id)));
                    }
                    None => None,
                }
            }
            PurgeTarget::Active(_) => {
                let mut index = self.lock_index();
                let finished = index.finished_fill(&hash);
                match (index.remove_complete(&hash, None, true), finished) {
                    (Some(c), _) => Some(c),
                    // Being committed: doomed with the key's other fills.
                    (None, Some(id)) => {
                        return Ok(PurgeOutcome::Purged(Some(CacheEntryId::new(id))));
                    }
                    (None, None) => None,
                }
            }
        };
        match removed {
            Some(c) => {
                // A purge is made durable whatever `durable_commits` says; an
                // eviction only when commits are.
                let durable = self.config.durable || matches!(purge_type, PurgeType::Invalidation);
                self.delete_objects(vec![(c.key, c.id)], durable).await;
                Ok(PurgeOutcome::Purged(Some(CacheEntryId::new(c.id))))
            }
            None => Ok(PurgeOutcome::NotFound),
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let _serial = self.meta_lock.lock().await;
        let hash = key.combined_bin();
        let Some(current) = self.lock_index().complete(&hash) else {
            return Ok(false);
        };
        let (internal, header) = meta.serialize()?;
        let stored = Arc::new(StoredMeta::new(internal, header));
        let fresh_until = meta.fresh_until();
        let bytes = format::encode_meta(&current.header_with(&stored, fresh_until))
            .map_err(|e| pingora_err(format!("cache store: cannot encode header: {e}")))?;
        let meta_len = bytes.len() as u64;
        let layout = self.layout.clone();
        let write_id = self.new_id();
        let (k, id) = (current.key, current.id);
        let durable = self.config.durable;
        let res = tokio::task::spawn_blocking(move || {
            files::replace_meta(&layout, write_id, &k, id, &bytes, durable)
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.count_write_error();
                return Err(pingora_io("cache store: header rewrite failed", e));
            }
            Err(e) => {
                return Err(pingora_err(format!(
                    "cache store: rewrite task failed: {e}"
                )));
            }
        }
        let updated = self
            .lock_index()
            .replace_meta(&hash, id, stored, meta_len, fresh_until);
        if !updated {
            // Purged or replaced meanwhile: the header just written is an orphan.
            self.delete_objects(vec![(k, id)], self.config.durable)
                .await;
        }
        Ok(updated)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
