//! Complete objects: write, read, replace, restart.

use super::support::*;
use crate::cache::store::StoreConfig;
use pingora_cache::storage::Storage;
use std::time::SystemTime;

#[tokio::test]
async fn write_then_read_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(fetch(store, "/v/a.mp4").await.is_none());
    let data = body(300 * 1024 + 17);
    let (id, weight) = store_object(store, "/v/a.mp4", &data, 10_000).await;
    assert!(weight > data.len());

    let (meta, mut hit) = store
        .lookup(&key("/v/a.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.response_header().status.as_u16(), 200);
    assert_eq!(hit.entry_id().unwrap().get(), id);
    assert_eq!(hit.get_eviction_weight(), weight);
    assert!(hit.can_seek());
    assert_eq!(read_all(&mut hit).await.unwrap(), data);

    let stats = store.stats();
    assert_eq!(stats.objects_stored, 1);
    assert_eq!(stats.bytes_stored, weight as u64);
    assert_eq!(stats.fills_in_progress, 0);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

#[tokio::test]
async fn empty_body_and_finish_without_eof() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/empty", b"", 1).await;
    assert_eq!(fetch(store, "/empty").await.unwrap(), b"");

    // No Content-Length and no eof write: finish alone completes the body.
    let mut miss = store
        .get_miss_handler(&key("/chunked"), &meta(None), &span())
        .await
        .unwrap();
    miss.write_body("abc".into(), false).await.unwrap();
    miss.write_body("def".into(), false).await.unwrap();
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(fetch(store, "/chunked").await.unwrap(), b"abcdef");
}

#[tokio::test]
async fn new_fill_replaces_old_and_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (id1, _) = store_object(store, "/v/a.mp4", b"first", 2).await;
    // A reader of the old object keeps reading it after the replacement.
    let (_, mut old_reader) = store
        .lookup(&key("/v/a.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    let (id2, _) = store_object(store, "/v/a.mp4", b"second!", 3).await;
    assert_ne!(id1, id2);
    assert_eq!(fetch(store, "/v/a.mp4").await.unwrap(), b"second!");
    assert_eq!(read_all(&mut old_reader).await.unwrap(), b"first");
    assert_eq!(store.stats().objects_stored, 1);
    // Only the new object's two files remain.
    let files = files_under(&dir.path().join("objects"));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.contains(&format!("{id2:016x}"))));
}

#[tokio::test]
async fn objects_survive_a_restart_with_their_keys() {
    for durable in [false, true] {
        objects_survive_a_restart(durable).await;
    }
}

async fn objects_survive_a_restart(durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(StoreConfig {
        durable,
        ..config(dir.path())
    });
    let data = body(100_000);
    let (id, weight) = store_object(store, "/courses/101/lecture-01.mp4", &data, 4096).await;
    store_object(store, "/courses/102/x.mp4?partNumber=2", b"xyz", 1).await;

    let reopened = open(dir.path());
    assert_eq!(
        fetch(reopened, "/courses/101/lecture-01.mp4")
            .await
            .unwrap(),
        data
    );
    assert_eq!(reopened.stats().objects_stored, 2);
    let entries = reopened.entries();
    assert_eq!(entries.len(), 2);
    let (k, w, fresh) = entries
        .iter()
        .find(|(k, _, _)| k.entry_id().map(|i| i.get()) == Some(id))
        .unwrap();
    assert_eq!(*k.key(), key("/courses/101/lecture-01.mp4").to_compact());
    assert_eq!(*w, weight);
    assert!(*fresh > SystemTime::now());
    // New ids after a restart never reuse old ones.
    let (id3, _) = store_object(reopened, "/new", b"n", 1).await;
    assert!(id3 > id);
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[tokio::test]
async fn a_body_no_longer_in_the_page_cache_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(700 * 1024 + 3);
    store_object(store, "/v/cold.mp4", &data, 10_000).await;
    let objects = dir.path().join("objects");
    for name in files_under(&objects) {
        let file = std::fs::File::open(objects.join(name)).unwrap();
        crate::cache::store::cached_read::drop_from_page_cache(&file);
    }
    let (_, mut hit) = store
        .lookup(&key("/v/cold.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), data);
    // And again, now from the page cache.
    let (_, mut hit) = store
        .lookup(&key("/v/cold.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), data);
}

/// A reader reads large chunks while few readers are open, and the small
/// ones once many are: what readers hold at once stays bounded.
#[tokio::test]
async fn readers_read_large_chunks_only_while_few_are_open() {
    use crate::cache::store::hit::{CHUNK, LARGE_CHUNK};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(3 << 20);
    store_object(store, "/v/big.mp4", &data, 1 << 20).await;
    let first_chunk = || async {
        let (_, mut hit) = store
            .lookup(&key("/v/big.mp4"), &span())
            .await
            .unwrap()
            .unwrap();
        let chunk = hit.read_body().await.unwrap().unwrap();
        (hit, chunk.len() as u64)
    };
    let (_one, len) = first_chunk().await;
    assert_eq!(len, LARGE_CHUNK);
    let mut open = Vec::new();
    for _ in 0..40 {
        open.push(first_chunk().await.0);
    }
    let (_many, len) = first_chunk().await;
    assert_eq!(len, CHUNK);
    drop(open);
    let (_again, len) = first_chunk().await;
    assert_eq!(len, LARGE_CHUNK);
}
