//! Helpers shared by the store tests.

use crate::cache::store::layout::LOCK_FILE;
use crate::cache::store::{DiskStore, StoreConfig};
use pingora_cache::CacheMeta;
use pingora_cache::key::CacheKey;
use pingora_cache::trace::{Span, SpanHandle};
use pingora_http::ResponseHeader;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub fn span() -> SpanHandle {
    Span::inactive().handle()
}

pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        max_object_size: 1 << 30,
        min_free_bytes: 0,
        memory_bytes: 1 << 20,
        memory_object_max: 64 * 1024,
        durable: false,
    }
}

pub fn open(dir: &Path) -> &'static DiskStore {
    Box::leak(Box::new(DiskStore::open(config(dir)).expect("open store")))
}

pub fn open_with(config: StoreConfig) -> &'static DiskStore {
    Box::leak(Box::new(DiskStore::open(config).expect("open store")))
}

pub fn key(path: &str) -> CacheKey {
    CacheKey::new(path, "")
}

/// A 200 meta, fresh for an hour, with `Content-Length: len` when given.
pub fn meta(len: Option<u64>) -> CacheMeta {
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.append_header("content-type", "video/mp4").unwrap();
    if let Some(len) = len {
        header
            .append_header("content-length", len.to_string())
            .unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header)
}

/// `meta(Some(len))` with `ETag: etag`: a revalidated header.
pub fn meta_with_etag(len: u64, etag: &str) -> CacheMeta {
    let mut meta = meta(Some(len));
    meta.response_header_mut()
        .insert_header("etag", etag)
        .expect("valid etag");
    meta
}

/// `len` bytes of a recognisable pattern.
pub fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

use pingora_cache::storage::{HitHandler, MissFinishType, Storage};

/// Reads a hit to its end; fails on the first error.
pub async fn read_all(hit: &mut HitHandler) -> pingora_error::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        assert!(chunk.len() as u64 <= crate::cache::store::hit::LARGE_CHUNK);
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Stores `data` under `path` in chunks of `chunk` bytes; returns the entry id
/// and the weight reported by `finish`.
pub async fn store_object(
    store: &'static DiskStore,
    path: &str,
    data: &[u8],
    chunk: usize,
) -> (u64, usize) {
    let mut miss = store
        .get_miss_handler(&key(path), &meta(Some(data.len() as u64)), &span())
        .await
        .expect("miss handler");
    let id = miss.entry_id().expect("entry id").get();
    for part in data.chunks(chunk.max(1)) {
        miss.write_body(bytes::Bytes::copy_from_slice(part), false)
            .await
            .expect("write");
    }
    miss.write_body(bytes::Bytes::new(), true)
        .await
        .expect("eof");
    let stored = match miss.finish().await.expect("finish") {
        MissFinishType::Created(w) => (id, w),
        MissFinishType::Appended(..) => panic!("unexpected append"),
    };
    committed(store).await;
    stored
}

/// Waits until every finished fill of `store` is committed (or dropped).
pub async fn committed(store: &DiskStore) {
    let mut commits = store.commits_in_progress();
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        commits.wait_for(|n| *n == 0),
    )
    .await;
    assert!(matches!(waited, Ok(Ok(_))), "commits not done within 10 s");
}

/// Looks `path` up and reads the whole body.
pub async fn fetch(store: &'static DiskStore, path: &str) -> Option<Vec<u8>> {
    let (_, mut hit) = store.lookup(&key(path), &span()).await.expect("lookup")?;
    Some(read_all(&mut hit).await.expect("read"))
}

/// Names of the files under `dir`, recursively, relative to it; the lock
/// files of open stores (no data) left out.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.file_name() == Some(std::ffi::OsStr::new(LOCK_FILE)) {
                // The open store's own lock: no data.
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Makes every commit of `path`'s fills fail: its shard directory cannot
/// be created (a file is in its place).
pub fn fail_commits(dir: &Path, path: &str) {
    use pingora_cache::key::CacheHashKey;
    let shard = format!("{:02x}", key(path).combined_bin()[0]);
    std::fs::write(dir.join("objects").join(shard), b"not a directory").unwrap();
}
