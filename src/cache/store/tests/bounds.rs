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

/// Makes every write to the one fill's temp file fail from now on: its
/// descriptor in this process is replaced by one of `/dev/null` opened
/// for reading (a write through it fails with `EBADF`).
fn spoil_temp_file_writes(store: &crate::cache::store::DiskStore) {
    use std::os::fd::AsRawFd;
    let tmp = store.layout.own_tmp();
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|target| {
                target.starts_with(&tmp) && target.extension().is_some_and(|x| x == "body")
            })
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    assert_eq!(fds.len(), 1, "one open temp body file: {fds:?}");
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: `dup2` onto a descriptor the store owns and keeps open: it
    // stays a valid descriptor (now of `/dev/null`), closed once by its
    // owner; `null` is closed by its own drop.
    #[allow(unsafe_code)]
    let done = unsafe { libc::dup2(null.as_raw_fd(), fds[0]) };
    assert_eq!(done, fds[0], "dup2: {}", std::io::Error::last_os_error());
}

#[tokio::test]
async fn a_batch_that_cannot_be_written_keeps_nothing() {
    use bytes::Bytes;
    // Within one batch: its write starts when the body ends and fails
    // after the request is done; the commit waits for it and keeps
    // nothing. Over several: the next batch finds the failure and the
    // fill stops there.
    for len in [300_000, 2_500_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let data = body(len);
        let mut miss = store
            .get_miss_handler(&key("/w"), &meta(Some(len as u64)), &span())
            .await
            .unwrap();
        spoil_temp_file_writes(store);
        let mut failed = false;
        for chunk in data.chunks(10_000) {
            if miss
                .write_body(Bytes::copy_from_slice(chunk), false)
                .await
                .is_err()
            {
                failed = true;
                break;
            }
        }
        if !failed {
            failed = miss.write_body(Bytes::new(), true).await.is_err();
        }
        if !failed {
            // The request's own part went well: the body was whole.
            miss.finish().await.unwrap();
        }
        assert_eq!(failed, len > 1_000_000, "{len} bytes");
        committed(store).await;
        let stats = store.stats();
        assert_eq!(stats.write_errors, 1, "{len} bytes");
        assert_eq!(stats.aborted_fills, 1, "{len} bytes");
        assert_eq!(stats.objects_stored, 0, "{len} bytes");
        assert_eq!(stats.fills_in_progress, 0, "{len} bytes");
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        assert!(store.lookup(&key("/w"), &span()).await.unwrap().is_none());
    }
}
