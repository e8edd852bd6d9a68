//! `DiskStore`: the disk cache storage engine behind Pingora's cache.
//!
//! One object is two files, a small meta file (magic, version, key, body
//! length, serialized `CacheMeta`, checksum) and a body file; see
//! `FORMAT.md`. Fills stream into `tmp/` and become visible as complete
//! objects only after both files are written and renamed into place
//! (fsynced first with `durable`); readers
//! can follow a fill while it is written (streaming partial writes).
//!
//! Module map: `format` (bytes), `layout` (paths), `index` (in-memory
//! bookkeeping), `fill` (shared fill state), `files` (blocking file work),
//! `miss` (writer), `batch` (its chunks gathered into fewer writes), `hit` (reader), `cached_read` (reads that never wait
//! for the disk), `memory` (copies of small hot bodies), `memory_hit`
//! (fresh hits answered from them whole), `file_hit` (fresh hits handed
//! out as their body file, to send with `sendfile`), `resident` (whether
//! the page cache holds a file's range), `thread_copies` (each worker
//! thread's own copies of the hottest), `striped` (counters without shared
//! writes), `meta_decode` (stored headers decoded once), `stored_meta` (an object's
//! meta as the index keeps it), `storage` (the
//! Pingora trait), `scan` (start-up), `space` (free space).

mod batch;
mod cached_read;
mod error;
mod file_hit;
mod files;
mod fill;
pub mod format;
pub(crate) mod hit;
mod index;
mod layout;
mod memory;
mod memory_hit;
mod meta_decode;
mod miss;
pub mod resident;
mod scan;
pub mod space;
mod storage;
mod stored_meta;
mod striped;
mod thread_copies;
pub mod wire;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use file_hit::{FileBody, FileHit, Held, Source};
pub use memory_hit::{Accesses, MemoryHit};
pub(crate) use stored_meta::StoredMeta;
pub use wire::{Wire, put_status_line};

use index::Index;
use layout::Layout;
use memory::MemoryTier;
use pingora_cache::CacheEntryKey;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use striped::StripedCounter;

/// Where the store lives and its bounds.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the store (created if missing).
    pub dir: PathBuf,
    /// Largest body admitted, in bytes.
    pub max_object_size: u64,
    /// New fills are refused while the filesystem has less free space.
    pub min_free_bytes: u64,
    /// Bytes of memory for copies of hot bodies (0: none); each worker
    /// thread may keep copies of the hottest small ones within an eighth of
    /// it besides.
    pub memory_bytes: u64,
    /// Largest body copied into memory: at most `INLINE_MAX` bytes on its
    /// first read from disk, larger ones on their second.
    pub memory_object_max: u64,
    /// Commits fsync the object's files and directory, so that every
    /// committed object outlives a power loss (`cache.durable_commits`).
    /// Purges are made durable either way.
    pub durable: bool,
}

/// A snapshot of the store's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Weight of the complete objects (body plus meta file bytes).
    pub bytes_stored: u64,
    /// Number of complete objects.
    pub objects_stored: u64,
    /// Fills being written now.
    pub fills_in_progress: u64,
    /// Disk write, fsync or rename failures (monotonic).
    pub write_errors: u64,
    /// Fills that ended without a committed object: dropped handler, write
    /// error, short or oversized body (monotonic).
    pub aborted_fills: u64,
    /// Fills refused at start: too large or too little free space (monotonic).
    pub refused_fills: u64,
    /// Files discarded by `open`: other format version, failed validation,
    /// orphans and superseded duplicates (not temp files).
    pub discarded_files: u64,
    /// Bytes of the bodies held in memory.
    pub memory_bytes: u64,
    /// Hits served from memory, without touching a file (monotonic).
    pub memory_hits: u64,
    /// Bytes of the worker threads' own copies of hot objects.
    pub thread_copy_bytes: u64,
}

#[derive(Default)]
struct Counters {
    write_errors: AtomicU64,
    aborted_fills: AtomicU64,
    refused_fills: AtomicU64,
    discarded_files: AtomicU64,
    /// Added to on every memory hit, by every worker thread.
    memory_hits: StripedCounter,
}

/// Each worker thread keeps its own copies of hot objects within this share
/// of `memory_bytes` (an eighth).
const THREAD_COPY_SHARE: u64 = 8;

/// The disk cache store. Leak it (`Box::leak`) to get the `&'static` that
/// `Storage` needs.
pub struct DiskStore {
    /// Each worker thread's own copies of hot objects.
    thread_copies: thread_copies::ThreadCopies,
    config: StoreConfig,
    layout: Layout,
    index: Mutex<Index>,
    memory: Mutex<MemoryTier>,
    next_id: AtomicU64,
    /// The lock on this process's temp folder, held while the store is open
    /// (none when the folder could not be made).
    _tmp_lock: Option<std::fs::File>,
    counters: Counters,
    /// Serializes header rewrites (`update_meta`).
    meta_lock: tokio::sync::Mutex<()>,
    /// Commits under way (see `miss.rs`): a graceful stop waits for them.
    commits: tokio::sync::watch::Sender<usize>,
    /// Told of each entry the eviction manager was given (a finished fill)
    /// that the store does not keep after all: its commit failed, a purge
    /// dropped it, or a newer fill replaced it ([`DiskStore::on_unkept`]).
    unkept: std::sync::OnceLock<Unkept>,
}

/// What [`DiskStore::on_unkept`] calls.
type Unkept = Box<dyn Fn(&CacheEntryKey) + Send + Sync>;

impl DiskStore {
    /// Opens (creating) the store: scans `dir`, deletes temp files of fills
    /// that never finished, discards files of another format version or that
    /// fail validation (logged, never a panic), and builds the index.
    pub fn open(config: StoreConfig) -> Result<DiskStore, StoreError> {
        scan::open(config)
    }

    /// Calls `forget` with each entry the store does not keep after its
    /// fill finished and was reported `Created` (so that Pingora gave it to
    /// the eviction manager): a commit that failed, a fill purged before
    /// its commit, an object replaced by a newer fill. The eviction manager
    /// would otherwise count bytes that are not stored until the entry
    /// aged out. Set once, by the engine; later calls are ignored.
    pub fn on_unkept(&self, forget: impl Fn(&CacheEntryKey) + Send + Sync + 'static) {
        let _ = self.unkept.set(Box::new(forget));
    }

    /// Tells the eviction manager that `entry` is not stored.
    fn unkept(&self, entry: &CacheEntryKey) {
        if let Some(forget) = self.unkept.get() {
            forget(entry);
        }
    }

    /// The number of fills whose commit is under way, kept up to date:
    /// `wait_for(|n| *n == 0)` resolves once every finished fill is on disk
    /// for good (or dropped).
    pub fn commits_in_progress(&self) -> tokio::sync::watch::Receiver<usize> {
        self.commits.subscribe()
    }

    /// Every complete object: its identified eviction key, weight (body plus
    /// meta file bytes) and `fresh_until`, to seed the eviction manager after
    /// a restart (`admit`).
    pub fn entries(&self) -> Vec<(CacheEntryKey, usize, SystemTime)> {
        self.lock_index()
            .entries()
            .into_iter()
            .map(|c| (c.eviction_key(), c.eviction_weight(), c.fresh_until))
            .collect()
    }

    pub fn stats(&self) -> StoreStats {
        let (bytes_stored, objects_stored, fills_in_progress) = {
            let index = self.lock_index();
            (index.bytes(), index.objects(), index.fills())
        };
        let memory_bytes = self.lock_memory().bytes();
        StoreStats {
            bytes_stored,
            objects_stored,
            fills_in_progress,
            write_errors: self.counters.write_errors.load(Ordering::Relaxed),
            aborted_fills: self.counters.aborted_fills.load(Ordering::Relaxed),
            refused_fills: self.counters.refused_fills.load(Ordering::Relaxed),
            discarded_files: self.counters.discarded_files.load(Ordering::Relaxed),
            memory_bytes,
            memory_hits: self.counters.memory_hits.get(),
            thread_copy_bytes: self.thread_copies.bytes(),
        }
    }

    /// Removes every complete object whose primary key (the text of
    /// `CacheKey::primary_key_str`) starts with `prefix`, and keeps fills in
    /// progress for such keys from being committed. Returns the identified
    /// keys removed, for the eviction manager (`remove`), each with its
    /// primary key text.
    pub async fn purge_prefix(&'static self, prefix: &str) -> Vec<(CacheEntryKey, Vec<u8>)> {
        self.purge_where(|primary, _| primary.starts_with(prefix.as_bytes()))
            .await
    }

    /// Removes every complete object for which `matches(primary key text,
    /// stored meta)` holds, and keeps such fills in progress from being
    /// committed; returns what `purge_prefix` returns. One pass over the
    /// index whatever `matches` tests (many purge rules at once).
    pub async fn purge_where(
        &'static self,
        matches: impl FnMut(&[u8], &StoredMeta) -> bool,
    ) -> Vec<(CacheEntryKey, Vec<u8>)> {
        let (removed, finished) = self.lock_index().drain_where(matches);
        let keys = removed
            .iter()
            .map(|c| (c.eviction_key(), c.primary.clone()))
            .chain(finished.iter().map(|f| {
                let id = pingora_cache::eviction::CacheEntryId::new(f.id);
                (
                    CacheEntryKey::identified(f.compact.clone(), id),
                    f.primary.clone(),
                )
            }))
            .collect();
        let targets: Vec<_> = removed.iter().map(|c| (c.key, c.id)).collect();
        // Purged: never to come back after a power loss.
        self.delete_objects(targets, true).await;
        keys
    }

    /// Whether the key has a complete object or a fill in progress, without
    /// opening anything.
    pub fn contains(&self, key: &pingora_cache::CacheKey) -> bool {
        use pingora_cache::key::CacheHashKey;
        self.lock_index().lookup(&key.combined_bin()).is_some()
    }

    /// Whether a file can be created in the store now (checked each time:
    /// the folder may have been removed, or its filesystem remounted
    /// read-only, under the running node).
    pub fn writable(&self) -> bool {
        files::probe_writable(&self.layout).is_ok()
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated
        // in a way that matters more than losing the cache: keep serving.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, MemoryTier> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn count_write_error(&self) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Deletes the files of committed objects (already out of the index);
    /// `durable`: the deletions outlive a power loss (purges).
    async fn delete_objects(
        &'static self,
        targets: Vec<(pingora_cache::key::HashBinary, u64)>,
        durable: bool,
    ) {
        if targets.is_empty() {
            return;
        }
        {
            let mut memory = self.lock_memory();
            for (key, id) in &targets {
                memory.remove(key, *id);
            }
        }
        let layout = self.layout.clone();
        let res = tokio::task::spawn_blocking(move || {
            for (key, id) in targets {
                if let Err(e) = files::remove_object(&layout, &key, id, durable) {
                    tracing::warn!(error = %e, id, "cache store: could not delete object files");
                }
            }
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "cache store: delete task failed");
        }
    }
}
