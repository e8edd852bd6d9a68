//! Entries given to the eviction manager that the store does not keep:
//! each is reported once, so the manager does not count bytes that are
//! not stored.

use super::support::*;
use crate::cache::store::DiskStore;
use pingora_cache::CacheEntryKey;
use pingora_cache::eviction::CacheEntryId;
use pingora_cache::storage::{PurgeType, Storage};
use std::sync::{Arc, Mutex};

/// The store of `dir` with a record of what it reports unkept.
fn recorded(dir: &std::path::Path) -> (&'static DiskStore, Arc<Mutex<Vec<CacheEntryKey>>>) {
    let store = open(dir);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    store.on_unkept(move |entry| record.lock().unwrap().push(entry.clone()));
    (store, seen)
}

fn entry(path: &str, id: u64) -> CacheEntryKey {
    CacheEntryKey::identified(key(path).to_compact(), CacheEntryId::new(id))
}

#[tokio::test]
async fn a_failed_commit_reports_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = recorded(dir.path());
    fail_commits(dir.path(), "/x");
    let mut miss = store
        .get_miss_handler(&key("/x"), &meta(Some(3)), &span())
        .await
        .unwrap();
    let id = miss.entry_id().unwrap().get();
    miss.write_body("abc".into(), true).await.unwrap();
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(*seen.lock().unwrap(), vec![entry("/x", id)]);
}

#[tokio::test]
async fn a_fill_purged_before_its_commit_reports_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = recorded(dir.path());
    let mut miss = store
        .get_miss_handler(&key("/v/a.mp4"), &meta(Some(3)), &span())
        .await
        .unwrap();
    let id = miss.entry_id().unwrap().get();
    let compact = key("/v/a.mp4").to_compact();
    let target = pingora_cache::storage::PurgeTarget::Active(&compact);
    store
        .purge(target, PurgeType::Invalidation, &span())
        .await
        .unwrap();
    miss.write_body("xyz".into(), true).await.unwrap();
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(*seen.lock().unwrap(), vec![entry("/v/a.mp4", id)]);
}

#[tokio::test]
async fn a_replaced_object_reports_the_old_entry_and_a_kept_one_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = recorded(dir.path());
    let (old, _) = store_object(store, "/v/a.mp4", b"old", 1).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "a kept fill is not reported"
    );
    let (new, _) = store_object(store, "/v/a.mp4", b"newer", 2).await;
    assert_ne!(old, new);
    assert_eq!(*seen.lock().unwrap(), vec![entry("/v/a.mp4", old)]);
    assert_eq!(fetch(store, "/v/a.mp4").await.unwrap(), b"newer");
}
