//! Helpers shared by the store tests.

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

/// `len` bytes of a recognisable pattern.
pub fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
