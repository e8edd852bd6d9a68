//! The writer side: starting a fill (`get_miss_handler`), appending body
//! chunks to its temp file, committing it, and cleaning up when it fails.
//!
//! A batch of chunks ([`batch`]) is written on the blocking pool while the
//! next one gathers: the request waits for a batch's write only when the
//! next batch is full before it is done, and never for the last one,
//! which the commit waits for. Readers read what is not in the file yet
//! from memory. Under a saturating load a batch's hand-off and write took
//! 2 ms at the median and 38 ms at the 99th percentile, each of them
//! between the origin's bytes and the client when the request waited. On
//! a machine whose page cache took every write at once the PoP workload's
//! saturation did not move; a write that waits for the disk (dirty pages
//! over the kernel's limits) now holds up the file, not the client.
//!
//! The commit (fsyncs, renames, the index) runs on a task of its own that
//! the request does not wait for: once the body is complete the fill is
//! readable whole, lookups are answered from it until the committed object
//! takes its place, and the request ends without waiting for the disk. A
//! request that waited for three fsyncs behind the writeback of every other
//! fill held its connection for tens of milliseconds under a write-heavy
//! load. A graceful stop waits for the commits under way
//! ([`DiskStore::commits_in_progress`]).

use super::batch::{self, Filling};
use super::error::{pingora_err, pingora_io};
use super::fill::{Fill, FillStart};
use super::format::{self, ObjectHeader};
use super::index::{Complete, InstallError};
use super::layout::{FileKind, remove_quietly};
use super::stored_meta::StoredMeta;
use super::{DiskStore, files, space};
use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::CacheMeta;
use pingora_cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_cache::storage::{HandleMiss, MissFinishType};
use pingora_error::Result;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The Content-Length a response header promises, if it is a plain number.
pub fn content_length(meta: &CacheMeta) -> Option<u64> {
    meta.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl DiskStore {
    /// Starts a fill: refuses when the object is too large or the disk too
    /// full, else creates the temp file and makes the fill visible to lookups.
    pub(super) async fn start_fill(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
    ) -> Result<DiskMiss> {
        let content_length = content_length(meta);
        if let Some(cl) = content_length
            && cl > self.config.max_object_size
        {
            self.counters.refused_fills.fetch_add(1, Ordering::Relaxed);
            return Err(pingora_err(format!(
                "cache store: Content-Length {cl} exceeds max_object_size {}",
                self.config.max_object_size
            )));
        }
        let (internal, header) = meta.serialize()?;
        let id = self.new_id();
        let hash = key.combined_bin();
        let layout = self.layout.clone();
        let min_free = self.config.min_free_bytes;
        let created = tokio::task::spawn_blocking(move || {
            if min_free > 0
                && let Some(free) = space::available_bytes(layout.root())?
                && free < min_free
            {
                return Ok(Err(free));
            }
            files::create_fill_file(&layout, id, &hash, content_length).map(Ok)
        })
        .await
        .map_err(|e| pingora_err(format!("cache store: fill task failed: {e}")))?;
        let file = match created {
            Ok(Ok(file)) => file,
            Ok(Err(free)) => {
                self.counters.refused_fills.fetch_add(1, Ordering::Relaxed);
                return Err(pingora_err(format!(
                    "cache store: {free} bytes free, below min_free_bytes {min_free}"
                )));
            }
            // Not room enough for the whole body: refused before a byte is
            // written, rather than failed halfway for every reader.
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                self.counters.refused_fills.fetch_add(1, Ordering::Relaxed);
                return Err(pingora_io(
                    "cache store: no room for the whole body on the filesystem",
                    e,
                ));
            }
            Err(e) => {
                self.count_write_error();
                return Err(pingora_io("cache store: cannot create temp file", e));
            }
        };
        let fill = Arc::new(Fill::new(
            FillStart {
                id,
                key: hash,
                compact: key.to_compact(),
                primary: key.primary_key().to_vec(),
                meta: Arc::new(StoredMeta::new(internal, header)),
                fresh_until: meta.fresh_until(),
                content_length,
            },
            Arc::new(file),
        ));
        self.lock_index().add_fill(fill.clone());
        Ok(DiskMiss {
            store: self,
            tag: id.to_be_bytes(),
            fill,
            written: 0,
            pending: 0,
            _filling: Filling::new(),
            writing: None,
            body_ended: false,
            ended: false,
        })
    }

    /// Forgets a failed fill: readers get errors, the temp file goes.
    fn abort_fill(&self, fill: &Fill, reason: &str) {
        fill.fail();
        self.lock_index().remove_fill(&fill.key, fill.id);
        self.counters.aborted_fills.fetch_add(1, Ordering::Relaxed);
        // Unlinking one file is quick enough to do in place (Drop is sync).
        if let Err(e) = remove_quietly(&self.layout.tmp_file(fill.id, FileKind::Body)) {
            tracing::warn!(error = %e, id = fill.id, "cache store: could not remove temp file");
        }
        tracing::debug!(id = fill.id, reason, "cache store: fill aborted");
    }

    /// Counts a batch's failed write and aborts its fill: the error to
    /// return.
    fn write_failed(&self, fill: &Fill, failed: WriteFailed) -> Box<pingora_error::Error> {
        if failed.counted {
            self.count_write_error();
        }
        self.abort_fill(fill, failed.reason);
        match failed.error {
            Some(e) => pingora_io("cache store: body write failed", e),
            None => pingora_err(format!("cache store: fill aborted: {}", failed.reason)),
        }
    }

    /// The meta file of a fill whose body is complete, and the object's
    /// weight; a header that cannot be encoded aborts the fill.
    fn encode(&self, fill: &Fill, body_len: u64) -> Result<(ObjectHeader, Vec<u8>, u64)> {
        let header = ObjectHeader {
            entry_id: fill.id,
            body_len,
            fresh_until: fill.fresh_until,
            primary_bin: fill.compact.primary,
            variance: fill.compact.variance.as_deref().copied(),
            user_tag: fill.compact.user_tag.to_string(),
            primary: fill.primary.clone(),
            meta_internal: fill.meta.internal.clone(),
            meta_header: fill.meta.header.clone(),
        };
        let meta_bytes = match format::encode_meta(&header) {
            Ok(b) => b,
            Err(e) => {
                self.abort_fill(fill, "header too large");
                return Err(pingora_err(format!(
                    "cache store: cannot encode header: {e}"
                )));
            }
        };
        let weight = body_len.saturating_add(meta_bytes.len() as u64);
        Ok((header, meta_bytes, weight))
    }

    /// Commits a fill whose body is complete under its encoded meta file,
    /// once its last batch (`writing`) is in its temp file.
    async fn commit(
        &'static self,
        fill: Arc<Fill>,
        writing: Option<Writing>,
        header: ObjectHeader,
        meta_bytes: Vec<u8>,
    ) -> Result<()> {
        // Pingora admitted the fill to the eviction manager when `finish`
        // returned, before this task ran (nothing is awaited between the two).
        let entry = fill_entry(&fill);
        if let Some(writing) = writing
            && let Err(failed) = writing.done().await
        {
            let e = self.write_failed(&fill, failed);
            self.unkept(&entry);
            return Err(e);
        }
        if fill.is_doomed() {
            // Purged while filling: readers got their body, nothing is kept.
            self.lock_index().remove_fill(&fill.key, fill.id);
            let _ = remove_quietly(&self.layout.tmp_file(fill.id, FileKind::Body));
            self.unkept(&entry);
            return Ok(());
        }
        let layout = self.layout.clone();
        let f = fill.clone();
        let meta_len = meta_bytes.len() as u64;
        let durable = self.config.durable;
        let res = tokio::task::spawn_blocking(move || {
            files::commit_fill(&layout, f.id, &f.key, &f.file, &meta_bytes, durable)
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.count_write_error();
                self.abort_fill(&fill, "commit failed");
                self.unkept(&entry);
                return Err(pingora_io("cache store: commit failed", e));
            }
            Err(e) => {
                self.abort_fill(&fill, "commit task failed");
                self.unkept(&entry);
                return Err(pingora_err(format!("cache store: commit task failed: {e}")));
            }
        }
        let complete = Arc::new(Complete::from_header(fill.key, header, meta_len));
        let installed = self.lock_index().install(&fill, complete);
        match installed {
            Ok(Some(old)) if old.id != fill.id => {
                self.unkept(&old.eviction_key());
                // Replaced: after a power loss the newer of the two is kept.
                self.delete_objects(vec![(old.key, old.id)], self.config.durable)
                    .await
            }
            Ok(_) => {}
            Err(InstallError::Doomed) => {
                self.unkept(&entry);
                // Purged while it was committed.
                self.delete_objects(vec![(fill.key, fill.id)], true).await
            }
        }
        Ok(())
    }
}

/// A batch's write on the blocking pool. Dropped unfinished (a fill
/// aborted meanwhile), the write goes on into the unlinked temp file.
struct Writing(tokio::task::JoinHandle<std::io::Result<()>>);

/// Why a batch's write failed.
struct WriteFailed {
    reason: &'static str,
    /// The write's own error (else the task failed).
    error: Option<std::io::Error>,
    /// Counted as a write error of the store.
    counted: bool,
}

impl Writing {
    async fn done(self) -> std::result::Result<(), WriteFailed> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailed {
                reason: "write error",
                error: Some(e),
                counted: true,
            }),
            Err(_) => Err(WriteFailed {
                reason: "write task failed",
                error: None,
                counted: false,
            }),
        }
    }
}

/// The identified key the eviction manager was given for `fill`.
fn fill_entry(fill: &Fill) -> CacheEntryKey {
    CacheEntryKey::identified(fill.compact.clone(), CacheEntryId::new(fill.id))
}

/// A commit under way, counted in [`DiskStore::commits_in_progress`] until
/// dropped.
struct CommitCounted(&'static DiskStore);

impl CommitCounted {
    fn new(store: &'static DiskStore) -> Self {
        store.commits.send_modify(|n| *n += 1);
        CommitCounted(store)
    }
}

impl Drop for CommitCounted {
    fn drop(&mut self) {
        self.0.commits.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The miss handler of one fill.
pub struct DiskMiss {
    store: &'static DiskStore,
    fill: Arc<Fill>,
    tag: [u8; 8],
    /// Body bytes accepted (in the file, or held by the fill until the
    /// next batch is written).
    written: u64,
    /// Of those, the bytes not in the file yet ([`batch`]).
    pending: u64,
    _filling: Filling,
    /// The batch being written. One at a time, in order: the next batch is
    /// taken once it is done.
    writing: Option<Writing>,
    /// The last body byte has been written.
    body_ended: bool,
    /// Committed or aborted: nothing more to do, not even in `Drop`.
    ended: bool,
}

impl DiskMiss {
    fn abort(&mut self, reason: &'static str) -> Box<pingora_error::Error> {
        if !self.ended {
            self.ended = true;
            self.store.abort_fill(&self.fill, reason);
        }
        pingora_err(format!("cache store: fill aborted: {reason}"))
    }

    /// Starts writing the pending chunks to the temp file, once the batch
    /// before them is written; readers read them from there once they are
    /// in it, from memory until then.
    async fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        if let Some(writing) = self.writing.take()
            && let Err(failed) = writing.done().await
        {
            self.ended = true;
            return Err(self.store.write_failed(&self.fill, failed));
        }
        // Nothing is being written: every chunk not in the file is pending.
        let (in_file, chunks) = self.fill.unwritten();
        let file = self.fill.file.clone();
        let fill = self.fill.clone();
        let offset = format::BODY_PREAMBLE_LEN + in_file;
        let end = self.written;
        self.writing = Some(Writing(tokio::task::spawn_blocking(move || {
            batch::write_all_at(&file, &chunks, offset)?;
            fill.written_to(end);
            Ok(())
        })));
        self.pending = 0;
        Ok(())
    }

    /// The body is over: check it against the promised length.
    fn end_body(&mut self) -> Result<()> {
        if let Some(cl) = self.fill.content_length
            && cl != self.written
        {
            return Err(self.abort("body shorter than Content-Length"));
        }
        self.body_ended = true;
        self.fill.done(self.written);
        Ok(())
    }
}

#[async_trait]
impl HandleMiss for DiskMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.ended || self.body_ended && !data.is_empty() {
            return Err(pingora_err("cache store: write after the fill ended"));
        }
        let new_len = self.written.saturating_add(data.len() as u64);
        if new_len > self.store.config.max_object_size {
            return Err(self.abort("body grew past max_object_size"));
        }
        if self.fill.content_length.is_some_and(|cl| new_len > cl) {
            return Err(self.abort("body longer than Content-Length"));
        }
        // Readable at once, from memory until its batch is written.
        self.pending += data.len() as u64;
        self.fill.accept(data, new_len);
        self.written = new_len;
        if eof || self.pending >= batch::limit() {
            self.flush().await?;
        }
        if eof && !self.body_ended {
            self.end_body()?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if self.ended {
            return Err(pingora_err("cache store: finish after the fill ended"));
        }
        self.flush().await?;
        if !self.body_ended {
            self.end_body()?;
        }
        self.ended = true;
        let (header, meta_bytes, weight) = self.store.encode(&self.fill, self.written)?;
        // A task of its own, not awaited (see the module's documentation);
        // nor can cancelling `finish` stop a commit halfway (files renamed
        // but not indexed).
        let store = self.store;
        let fill = self.fill.clone();
        let writing = self.writing.take();
        let counted = CommitCounted::new(store);
        tokio::spawn(async move {
            let _counted = counted;
            let id = fill.id;
            if let Err(e) = store.commit(fill, writing, header, meta_bytes).await {
                tracing::warn!(error = %e, id, "cache store: a finished fill was not kept");
            }
        });
        Ok(MissFinishType::Created(
            usize::try_from(weight).unwrap_or(usize::MAX),
        ))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }

    fn entry_id(&self) -> Option<CacheEntryId> {
        Some(CacheEntryId::new(self.fill.id))
    }
}

impl Drop for DiskMiss {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            self.store
                .abort_fill(&self.fill, "miss handler dropped without finish");
        }
    }
}
