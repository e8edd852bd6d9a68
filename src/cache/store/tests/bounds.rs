//! Refusals and write errors.

use super::support::*;
use pingora_cache::storage::Storage;

#[tokio::test]
async fn content_length_over_max_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_object_size = 1000;
    let store = open_with(config);
    let res = store
        .get_miss_handler(&key("/big"), &meta(Some(1001)), &span())
        .await;
    assert!(res.is_err());
    assert!(
        store
            .get_miss_handler(&key("/ok"), &meta(Some(1000)), &span())
            .await
            .is_ok()
    );
    assert_eq!(store.stats().refused_fills, 1);
}

#[tokio::test]
async fn low_free_space_refuses_new_fills() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.min_free_bytes = u64::MAX;
    let store = open_with(config);
    let res = store
        .get_miss_handler(&key("/x"), &meta(Some(1)), &span())
        .await;
    if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
        assert!(res.is_err());
        assert_eq!(store.stats().refused_fills, 1);
        assert!(files_under(dir.path()).is_empty());
    }
}

#[tokio::test]
async fn a_failed_commit_is_counted_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    fail_commits(dir.path(), "/x");
    let mut miss = store
        .get_miss_handler(&key("/x"), &meta(Some(3)), &span())
        .await
        .unwrap();
    miss.write_body("abc".into(), true).await.unwrap();
    // The request is done when the body is: the commit fails after it.
    miss.finish().await.unwrap();
    committed(store).await;
    let stats = store.stats();
    assert_eq!(stats.write_errors, 1);
    assert_eq!(stats.aborted_fills, 1);
    assert_eq!(stats.objects_stored, 0);
    assert_eq!(stats.fills_in_progress, 0);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(store.lookup(&key("/x"), &span()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_removed_store_is_not_writable_and_its_fills_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.writable());
    // The probe leaves nothing behind.
    assert!(files_under(dir.path()).is_empty());
    std::fs::remove_dir_all(dir.path().join("tmp")).unwrap();
    assert!(!store.writable());
    assert!(
        store
            .get_miss_handler(&key("/a"), &meta(Some(10)), &span())
            .await
            .is_err()
    );
    assert_eq!(store.stats().write_errors, 1);
    assert_eq!(store.stats().refused_fills, 0);
}

#[tokio::test]
async fn a_store_reopened_in_the_process_takes_over_its_temp_folder() {
    // Record locks belong to a process: a store opened again in the same
    // process (as after a crash) sees the first one's folder as unused.
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let mut miss = first
        .get_miss_handler(&key("/a"), &meta(Some(10)), &span())
        .await
        .unwrap();
    miss.write_body("12345".into(), false).await.unwrap();
    std::mem::forget(miss);
    let tmp = dir.path().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);
    let second = open(dir.path());
    let folders: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(files_under(&tmp).is_empty());
    assert!(second.writable());
}
