//! The cache as the node runs it: the disk store, the eviction manager and
//! the cache lock, opened once at start-up and living for the process
//! (Pingora's cache traits want `&'static`).

use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora_cache::eviction::EvictionManager;
use pingora_cache::lock::CacheLock;
use pingora_cache::storage::{PurgeOutcome, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::Span;

use crate::cache::eviction::Manager;
use crate::cache::key;
use crate::cache::lock::CountingLock;
use crate::cache::purge::{Matcher, TimedPurge};
use crate::cache::settings::CacheConfig;
use crate::cache::store::{DiskStore, StoreConfig};
use crate::metrics::CacheSnapshot;

pub struct Engine {
    pub store: &'static DiskStore,
    pub eviction: &'static Manager,
    pub lock: &'static CountingLock,
    pub config: CacheConfig,
}

impl Engine {
    /// Opens the store (scanning what is on disk) and seeds the eviction
    /// manager with it, deleting whatever no longer fits `max_size`.
    pub async fn open(config: CacheConfig) -> Result<Engine, String> {
        let store = DiskStore::open(StoreConfig {
            dir: config.dir.clone(),
            max_object_size: config.max_object_size,
            min_free_bytes: config.min_free_space,
            memory_bytes: config.memory_size,
            memory_object_max: config.memory_object_max_size,
            durable: config.durable_commits,
        })
        .map_err(|e| format!("cache.dir {}: {e}", config.dir.display()))?;
        let store: &'static DiskStore = Box::leak(Box::new(store));
        let capacity = usize::try_from(config.max_size).unwrap_or(usize::MAX);
        let eviction: &'static Manager = Box::leak(Box::new(Manager::new(capacity)));
        store.on_unkept(move |entry| eviction.remove(entry.into()));
        let lock = Box::leak(Box::new(CountingLock::new(CacheLock::new_boxed(
            config.lock_timeout,
        ))));
        let engine = Engine {
            store,
            eviction,
            lock,
            config,
        };
        engine.seed().await;
        Ok(engine)
    }

    /// Where the eviction manager keeps its access-frequency estimates
    /// between runs (the disk scan stays the truth about what is stored).
    fn sketch_dir(&self) -> String {
        self.config.dir.join("eviction").display().to_string()
    }

    async fn seed(&self) {
        if let Err(e) = self.eviction.load(&self.sketch_dir()).await {
            tracing::warn!(error = %e, "eviction frequencies not loaded; starting without them");
        }
        let span = Span::inactive();
        for (entry, size, fresh_until) in self.store.entries() {
            for evicted in self.eviction.admit(entry, size, fresh_until) {
                let target = PurgeTarget::Exact(&evicted);
                if let Err(e) = self
                    .store
                    .purge(target, PurgeType::Eviction, &span.handle())
                    .await
                {
                    tracing::warn!(error = %e, "could not evict a cached object at start-up");
                }
            }
        }
    }

    /// Removes the object stored for one canonical path (and query), with
    /// its slices and record when it is sliced.
    pub async fn purge_one(&self, canonical_path: &str, canonical_query: &str) -> usize {
        let primary = key::cache_key(canonical_path, canonical_query);
        let sliced = self.purge_prefix(&key::slice::family(&primary)).await;
        sliced + self.purge_whole(canonical_path, canonical_query).await
    }

    async fn purge_whole(&self, canonical_path: &str, canonical_query: &str) -> usize {
        let key = key::object(canonical_path, canonical_query).to_compact();
        let span = Span::inactive();
        match self
            .store
            .purge(
                PurgeTarget::Active(&key),
                PurgeType::Invalidation,
                &span.handle(),
            )
            .await
        {
            Ok(PurgeOutcome::Purged(id)) => {
                self.eviction
                    .remove(PurgeTarget::Active(&key).removed_entry(id));
                1
            }
            Ok(_) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "purge failed");
                0
            }
        }
    }

    /// Removes every object whose key starts with `prefix`.
    pub async fn purge_prefix(&self, prefix: &str) -> usize {
        let removed = self.store.purge_prefix(prefix).await;
        for (entry, _) in &removed {
            self.eviction.remove(entry.into());
        }
        // Bodies, whole or slices; an object's record is not one.
        removed
            .iter()
            .filter(|(_, primary)| !key::slice::is_record(primary))
            .count()
    }

    /// Removes what the purges name and the origin produced before their
    /// time ([`crate::cache::purge`]), in one pass over the index; counts
    /// bodies as `purge_prefix` does.
    pub async fn purge_before(&self, purges: &[TimedPurge]) -> usize {
        if purges.is_empty() {
            return 0;
        }
        let matcher = Matcher::new(purges);
        let removed = self
            .store
            .purge_where(|primary, meta| matcher.matches(primary, meta))
            .await;
        for (entry, _) in &removed {
            self.eviction.remove(entry.into());
        }
        removed
            .iter()
            .filter(|(_, primary)| !key::slice::is_record(primary))
            .count()
    }

    pub fn snapshot(&self) -> CacheSnapshot {
        let stats = self.store.stats();
        CacheSnapshot {
            stored_bytes: stats.bytes_stored,
            stored_objects: stats.objects_stored,
            max_bytes: self.config.max_size,
            disk_free_bytes: crate::cache::store::space::available_bytes(&self.config.dir)
                .ok()
                .flatten()
                .unwrap_or(0),
            evictions: self.eviction.evicted_items() as u64,
            write_errors: stats.write_errors,
            aborted_fills: stats.aborted_fills,
            refused_fills: stats.refused_fills,
            memory_bytes: stats.memory_bytes,
            memory_hits: stats.memory_hits,
            thread_copy_bytes: stats.thread_copy_bytes,
            lock_waits: self.lock.waits(),
            writable: self.store.writable(),
        }
    }
}

/// How often the eviction manager's frequency estimates are saved.
const SKETCH_SAVE_INTERVAL: Duration = Duration::from_secs(300);

/// Saves the eviction manager's frequency estimates periodically and at
/// shutdown, so that a restart keeps knowing which objects are popular.
pub struct SketchSaver(pub &'static Engine);

#[async_trait]
impl BackgroundService for SketchSaver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let engine = self.0;
        let dir = engine.sketch_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(error = %e, "cannot create {dir}; eviction frequencies will not be saved");
            return;
        }
        loop {
            let stopping = tokio::select! {
                _ = shutdown.changed() => true,
                _ = tokio::time::sleep(SKETCH_SAVE_INTERVAL) => false,
            };
            if let Err(e) = engine.eviction.save(&dir).await {
                tracing::warn!(error = %e, "saving eviction frequencies failed");
            }
            if stopping {
                return;
            }
        }
    }
}
