//! Cost of one cache hit inside the disk store: `Storage::lookup` of a small object whose
//! body is in the memory tier, which finds the index entry, rebuilds the `CacheMeta` handed to
//! Pingora and makes the hit handler (the body is not read: that is a `Bytes` clone).
//!
//! `lookup_1k_hit` looks up with a key built once; `key_and_lookup_1k_hit` builds the key the
//! way the request path does (`cache::key::object`) on every iteration and also makes the
//! compact key Pingora hands the eviction manager on a hit, so the cost of hashing the key is
//! in it. `memory_hit_1k` is what the request path does instead for a fresh object in memory
//! (`DiskStore::memory_hit`: the stored header copied, the body a `Bytes` clone, no meta and
//! no hit handler). All run on a current-thread runtime, uncontended.
//!
//! Run: `cargo bench --bench store_hit -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cdn_node::cache::key::object as cache_key;
use cdn_node::cache::store::{DiskStore, StoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use pingora_cache::CacheMeta;
use pingora_cache::storage::{MissFinishType, Storage};
use pingora_cache::trace::Span;
use pingora_http::ResponseHeader;

const BODY_LEN: usize = 1024;
const PATH: &str = "/courses/101/lecture-000042/poster.jpg";

/// A meta like the ones an S3 origin's answers get.
fn meta() -> CacheMeta {
    let mut header = ResponseHeader::build(200, None).expect("header");
    for (name, value) in [
        ("content-type", "image/jpeg".to_owned()),
        ("content-length", BODY_LEN.to_string()),
        ("etag", "\"0123456789abcdef0123456789abcdef\"".to_owned()),
        ("last-modified", "Tue, 03 Jun 2025 10:00:00 GMT".to_owned()),
        ("accept-ranges", "bytes".to_owned()),
        ("cache-control", "public, max-age=86400".to_owned()),
    ] {
        header.append_header(name, value).expect("header");
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(86_400), now, 60, 300, header)
}

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: &'static DiskStore = Box::leak(Box::new(
        DiskStore::open(StoreConfig {
            dir: dir.path().to_path_buf(),
            max_object_size: 1 << 30,
            min_free_bytes: 0,
            memory_bytes: 1 << 20,
            memory_object_max: 64 * 1024,
            durable: false,
        })
        .expect("open"),
    ));
    let span = Span::inactive().handle();
    let key = cache_key(PATH, "");
    rt.block_on(async {
        let mut miss = store
            .get_miss_handler(&key, &meta(), &span)
            .await
            .expect("miss handler");
        miss.write_body(Bytes::from(vec![7u8; BODY_LEN]), true)
            .await
            .expect("write");
        assert!(matches!(
            miss.finish().await.expect("finish"),
            MissFinishType::Created(_)
        ));
        // The first hit reads the body into the memory tier.
        store
            .lookup(&key, &span)
            .await
            .expect("lookup")
            .expect("hit");
    });
    let memory_hits = store.stats().memory_hits;

    let mut group = c.benchmark_group("store_hit");
    group.bench_function("lookup_1k_hit", |b| {
        b.iter(|| {
            let found = rt.block_on(store.lookup(black_box(&key), &span));
            black_box(found.expect("lookup").expect("hit"))
        })
    });
    group.bench_function("key_and_lookup_1k_hit", |b| {
        b.iter(|| {
            let key = cache_key(black_box(PATH), "");
            let found = rt.block_on(store.lookup(&key, &span));
            black_box(key.to_compact());
            black_box(found.expect("lookup").expect("hit"))
        })
    });
    group.bench_function("memory_hit_1k", |b| {
        b.iter(|| {
            // After its first two hits, from the thread's own copy.
            let hit = store.memory_hit(black_box(&key), SystemTime::now(), |_| true, |_| Ok(()));
            black_box(hit.expect("prepare").expect("a memory hit"))
        })
    });
    group.finish();
    assert!(store.stats().memory_hits > memory_hits, "hits from memory");
}

criterion_group!(benches, hit);
criterion_main!(benches);
