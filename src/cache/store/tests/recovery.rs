//! Start-up recovery: what `open` keeps, deletes and counts.

use super::support::*;
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::Storage;
use std::fs;
use std::path::{Path, PathBuf};

/// The (meta, body) paths of the only object under `dir`.
fn only_object(dir: &Path) -> (PathBuf, PathBuf) {
    let files = files_under(&dir.join("objects"));
    assert_eq!(files.len(), 2, "{files:?}");
    let meta = files.iter().find(|f| f.ends_with(".meta")).unwrap();
    let body = files.iter().find(|f| f.ends_with(".body")).unwrap();
    (
        dir.join("objects").join(meta),
        dir.join("objects").join(body),
    )
}

async fn one_object(dir: &Path) -> (PathBuf, PathBuf) {
    let store = open(dir);
    store_object(store, "/v/a.mp4", &body(5000), 1000).await;
    only_object(dir)
}

#[tokio::test]
async fn unfinished_fills_leave_nothing_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut miss = store
        .get_miss_handler(&key("/v/a.mp4"), &meta(None), &span())
        .await
        .unwrap();
    miss.write_body("partial".into(), false).await.unwrap();
    // Simulates kill -9: the handler never finishes nor drops.
    std::mem::forget(miss);
    assert_eq!(files_under(&dir.path().join("tmp")).len(), 1);
    let reopened = open(dir.path());
    assert!(files_under(dir.path()).is_empty());
    assert!(fetch(reopened, "/v/a.mp4").await.is_none());
}

#[tokio::test]
async fn truncated_body_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (_, body_path) = one_object(dir.path()).await;
    let f = fs::OpenOptions::new().write(true).open(&body_path).unwrap();
    f.set_len(1000).unwrap();
    let store = open(dir.path());
    assert!(fetch(store, "/v/a.mp4").await.is_none());
    assert_eq!(store.stats().discarded_files, 2);
    assert!(files_under(dir.path()).is_empty());
}

/// What a power loss can leave of a commit that was not fsynced
/// (`durable_commits: false`) on a filesystem that writes a file's data
/// before the size that covers it (ext4's `data=ordered`, XFS, btrfs): both
/// files renamed into place, one of them with none or only part of its
/// bytes. Start-up discards both files; nothing of the object is served.
#[tokio::test]
async fn a_commit_cut_short_by_a_power_loss_is_discarded() {
    for (file, kept) in [
        ("body", 0),
        ("body", 32),
        ("body", 4096),
        ("meta", 0),
        ("meta", 24),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (meta_path, body_path) = one_object(dir.path()).await;
        let path = if file == "body" { body_path } else { meta_path };
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(kept).unwrap();
        let store = open(dir.path());
        assert!(
            fetch(store, "/v/a.mp4").await.is_none(),
            "{file} cut to {kept}"
        );
        assert_eq!(store.stats().objects_stored, 0, "{file} cut to {kept}");
        assert!(files_under(dir.path()).is_empty(), "{file} cut to {kept}");
    }
}

#[tokio::test]
async fn other_format_version_is_discarded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (meta_path, _) = one_object(dir.path()).await;
    let mut bytes = fs::read(&meta_path).unwrap();
    bytes[8] = 2; // version 2, from a future build
    fs::write(&meta_path, bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().objects_stored, 0);
    assert_eq!(store.stats().discarded_files, 2);
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn garbage_and_orphans_are_removed_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (meta_path, body_path) = one_object(dir.path()).await;
    let shard = meta_path.parent().unwrap().to_path_buf();
    // A crash between the two renames of a commit leaves a body alone.
    let orphan_body = shard.join(format!("{}-{:016x}.body", "ab".repeat(16), 7));
    fs::copy(&body_path, &orphan_body).unwrap();
    // A meta without a body, garbage under a valid name, and a stray file.
    fs::write(
        shard.join(format!("{}-{:016x}.meta", "cd".repeat(16), 8)),
        b"junk",
    )
    .unwrap();
    fs::copy(
        &meta_path,
        shard.join(format!("{}-{:016x}.meta", "ef".repeat(16), 9)),
    )
    .unwrap();
    fs::write(shard.join("notes.txt"), b"?").unwrap();
    fs::write(
        dir.path().join("tmp").join("0000000000000099.meta"),
        b"half",
    )
    .unwrap();

    let store = open(dir.path());
    assert_eq!(store.stats().objects_stored, 1);
    assert_eq!(fetch(store, "/v/a.mp4").await.unwrap(), body(5000));
    assert_eq!(
        files_under(dir.path()).len(),
        2,
        "{:?}",
        files_under(dir.path())
    );
}

#[tokio::test]
async fn of_two_complete_objects_of_a_key_the_newer_wins() {
    // A crash after committing a new fill but before deleting the old one.
    let dir = tempfile::tempdir().unwrap();
    let (old_meta, old_body) = one_object(dir.path()).await;
    let saved = (fs::read(&old_meta).unwrap(), fs::read(&old_body).unwrap());
    let store = open(dir.path());
    let (new_id, _) = store_object(store, "/v/a.mp4", b"newer", 2).await;
    fs::write(&old_meta, &saved.0).unwrap();
    fs::write(&old_body, &saved.1).unwrap();

    let reopened = open(dir.path());
    assert_eq!(fetch(reopened, "/v/a.mp4").await.unwrap(), b"newer");
    assert_eq!(reopened.entries()[0].0.entry_id().unwrap().get(), new_id);
    assert_eq!(files_under(&dir.path().join("objects")).len(), 2);
}

#[tokio::test]
async fn a_body_swapped_under_a_valid_meta_is_refused_at_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (_, body_path) = one_object(dir.path()).await;
    let mut bytes = fs::read(&body_path).unwrap();
    bytes[16] ^= 1; // the entry id in the body preamble
    fs::write(&body_path, bytes).unwrap();
    let store = open(dir.path());
    assert!(fetch(store, "/v/a.mp4").await.is_none());
    assert_eq!(store.stats().objects_stored, 0);
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn files_land_in_the_shard_of_their_key_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (meta_path, _) = one_object(dir.path()).await;
    let hash = key("/v/a.mp4").combined();
    let shard = meta_path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(shard, hash[..2]);
    let name = meta_path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("{hash}-")), "{name}");
}

#[tokio::test]
async fn large_headers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut m = meta(Some(2));
    let long = "x".repeat(40_000);
    m.response_header_mut()
        .insert_header("x-long", &long)
        .unwrap();
    let mut miss = store
        .get_miss_handler(&key("/h"), &m, &span())
        .await
        .unwrap();
    miss.write_body("ok".into(), true).await.unwrap();
    miss.finish().await.unwrap();
    committed(store).await;
    let reopened = open(dir.path());
    let (m2, _) = reopened.lookup(&key("/h"), &span()).await.unwrap().unwrap();
    assert_eq!(m2.headers().get("x-long").unwrap().to_str().unwrap(), long);
    assert_eq!(reopened.stats().discarded_files, 0);
}
