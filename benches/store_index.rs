//! Start-up cost of the disk cache store: `DiskStore::open` over 100,000 small objects.
//!
//! After a restart the node cannot serve from disk until `open` has scanned the store
//! directory, validated every object (meta file decoded and checksummed, body file size
//! checked) and built the index, so this bounds how long a restarted node misses on
//! everything. Target on the 2-core reference machine: well under 2 s for 100,000 objects.
//!
//! The objects (each a meta file with a real serialized `CacheMeta` plus a 100-byte body
//! file) are written once, directly in format version 1, into a temp directory; each
//! iteration then opens the store on it. The page cache is warm after the first iteration,
//! as it usually is on a quick restart; a cold disk is slower.
//!
//! Run: `cargo bench --bench store_index -- --warm-up-time 1 --measurement-time 10`

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cdn_node::cache::store::format::{self, ObjectHeader};
use cdn_node::cache::store::{DiskStore, StoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use pingora_cache::CacheMeta;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_http::ResponseHeader;

const OBJECTS: u64 = 100_000;
const BODY_LEN: usize = 100;

fn populate(dir: &Path) {
    let mut header = ResponseHeader::build(200, None).expect("header");
    header
        .append_header("content-type", "video/mp4")
        .expect("header");
    header
        .append_header("content-length", BODY_LEN.to_string())
        .expect("header");
    header
        .append_header("etag", "\"0123456789abcdef\"")
        .expect("header");
    let now = SystemTime::now();
    let meta = CacheMeta::new(now + Duration::from_secs(86_400), now, 0, 0, header);
    let (internal, resp) = meta.serialize().expect("serialize");
    let body = vec![7u8; BODY_LEN];
    for i in 0..OBJECTS {
        let primary = format!("/courses/{}/lecture-{i:06}.mp4", i % 500);
        let key = CacheKey::new(primary.clone(), "");
        let hash = key.combined_bin();
        let id = i + 1;
        let shard = dir.join("objects").join(format!("{:02x}", hash[0]));
        fs::create_dir_all(&shard).expect("shard dir");
        let stem = format!("{}-{id:016x}", key.combined());
        let header = ObjectHeader {
            entry_id: id,
            body_len: BODY_LEN as u64,
            fresh_until: meta.fresh_until(),
            primary_bin: key.primary_bin(),
            variance: None,
            user_tag: String::new(),
            primary: primary.into_bytes(),
            meta_internal: internal.clone(),
            meta_header: resp.clone(),
        };
        fs::write(
            shard.join(format!("{stem}.meta")),
            format::encode_meta(&header).expect("encode"),
        )
        .expect("write meta");
        let mut body_file = format::encode_body_preamble(id, &hash).to_vec();
        body_file.extend_from_slice(&body);
        fs::write(shard.join(format!("{stem}.body")), body_file).expect("write body");
    }
}

fn open_100k(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    populate(dir.path());
    let config = StoreConfig {
        dir: dir.path().to_path_buf(),
        max_object_size: 1 << 30,
        min_free_bytes: 0,
        memory_bytes: 0,
        memory_object_max: 0,
        durable: false,
    };
    let store = DiskStore::open(config.clone()).expect("open");
    assert_eq!(store.stats().objects_stored, OBJECTS);
    drop(store);

    let mut group = c.benchmark_group("store_index");
    group.sample_size(10);
    group.bench_function("open_100k_objects", |b| {
        b.iter_with_large_drop(|| DiskStore::open(config.clone()).expect("open"))
    });
    group.finish();
}

criterion_group!(benches, open_100k);
criterion_main!(benches);
