//! Fresh hits handed out whole from memory: only the plainest case, never
//! another version's body, and a hot object from the thread's own copy.

use super::support::*;
use crate::cache::store::thread_copies::{CHURN_WINDOW, HEADER_WEIGHT, REPORT_AFTER, REPORT_EVERY};
use crate::cache::store::{DiskStore, MemoryHit};
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{PurgeType, Storage};
use pingora_cache::{CacheEntryKey, PurgeTarget};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

fn any(_: &pingora_http::ResponseHeader) -> bool {
    true
}

/// A memory hit on `path` at `now`, with nothing added to its header.
fn hit(store: &DiskStore, path: &str, now: SystemTime) -> Option<MemoryHit> {
    store
        .memory_hit(&key(path), now, any, |_| Ok(()))
        .expect("prepare cannot fail")
}

/// Makes `path`, already in memory, hot: two hits, the second of which
/// leaves a copy with the thread.
fn heat(store: &DiskStore, path: &str, now: SystemTime) {
    for _ in 0..2 {
        assert!(hit(store, path, now).is_some(), "{path} hit from memory");
    }
}

#[tokio::test]
async fn a_fresh_object_in_memory_is_handed_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(1000);
    let (id, weight) = store_object(store, "/v/a", &data, 300).await;
    let now = SystemTime::now();
    assert!(
        hit(store, "/v/a", now).is_none(),
        "no hit has decoded the meta or kept a copy yet"
    );
    assert_eq!(fetch(store, "/v/a").await.unwrap(), data);
    let memory_hits = store.stats().memory_hits;
    // Refused by the caller: declined, not counted.
    let refused = store.memory_hit(&key("/v/a"), now, |_| false, |_| Ok(()));
    assert!(refused.unwrap().is_none());

    let first = hit(store, "/v/a", now).expect("a hit");
    assert_eq!(first.body, data);
    assert_eq!(first.header.status.as_u16(), 200);
    assert_eq!(first.header.headers.get("content-length").unwrap(), "1000");
    assert!(first.age < Duration::from_secs(5), "{:?}", first.age);
    let told = first.accesses.expect("each hit told");
    let stored = CacheEntryKey::identified(
        key("/v/a").to_compact(),
        pingora_cache::eviction::CacheEntryId::new(id),
    );
    assert_eq!(told.entry, stored);
    assert_eq!((told.weight, told.requests), (weight, 1));
    let fresh_until = store.entries()[0].2;
    assert!(fresh_until > now + Duration::from_secs(3000));
    assert_eq!(store.stats().memory_hits, memory_hits + 1);

    // The age counts from when the object was stored.
    let later = hit(store, "/v/a", now + Duration::from_secs(100)).unwrap();
    assert!(later.age >= Duration::from_secs(100));

    // Not fresh any more: declined, not counted.
    let expired = fresh_until + Duration::from_secs(1);
    assert!(hit(store, "/v/a", expired).is_none());
    assert!(hit(store, "/v/b", now).is_none());
    assert_eq!(store.stats().memory_hits, memory_hits + 2);
}

#[tokio::test]
async fn a_hot_object_is_answered_from_the_threads_own_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(1000);
    store_object(store, "/v/a", &data, 300).await;
    fetch(store, "/v/a").await.unwrap();
    let now = SystemTime::now();
    let prepared = Cell::new(0);
    let prepare = |h: &mut pingora_http::ResponseHeader| {
        prepared.set(prepared.get() + 1);
        h.insert_header("x-cache", "HIT")
    };
    let hit_at = |at| {
        store
            .memory_hit(&key("/v/a"), at, any, prepare)
            .unwrap()
            .expect("a hit")
    };

    let shared = hit_at(now);
    let copied = hit_at(now);
    assert_eq!(prepared.get(), 2, "once per hit until a copy is made");
    assert_eq!(copied.accesses.as_ref().expect("told at once").requests, 1);
    let from_copy = hit_at(now);
    assert_eq!(prepared.get(), 2, "the copy's header was prepared once");
    for h in [&shared, &copied, &from_copy] {
        assert_eq!(h.body, data);
        assert_eq!(h.header.headers.get("x-cache").unwrap(), "HIT");
        assert_eq!(h.header.headers.len(), 3);
    }
    // The copy's body is its own, the same on each of its hits.
    assert_ne!(copied.body.as_ptr(), shared.body.as_ptr());
    assert_eq!(from_copy.body.as_ptr(), copied.body.as_ptr());
    assert_eq!(store.stats().memory_hits, 3);
    assert_eq!(store.stats().thread_copy_bytes, 1000 + HEADER_WEIGHT);

    // Its hits are told in batches: every REPORT_EVERY hits...
    // (`from_copy` was the first hit of the copy.)
    for n in 2..REPORT_EVERY {
        assert!(hit_at(now).accesses.is_none(), "hit {n}");
    }
    let batch = hit_at(now).accesses.expect("a batch");
    assert_eq!(batch.requests, REPORT_EVERY);
    // ... or once REPORT_AFTER has passed.
    assert!(hit_at(now).accesses.is_none());
    let later = hit_at(now + REPORT_AFTER).accesses.expect("after a while");
    assert_eq!(later.requests, 2);
    assert!(hit_at(now + REPORT_AFTER).accesses.is_none());
}

#[tokio::test]
async fn a_fill_a_replacement_an_update_or_a_purge_is_never_answered_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/v/a", b"first", 5).await;
    fetch(store, "/v/a").await.unwrap();
    let now = SystemTime::now();
    heat(store, "/v/a", now);

    // A fill in progress for the key: its readers follow the fill.
    let miss = store
        .get_miss_handler(&key("/v/a"), &meta(Some(6)), &span())
        .await
        .unwrap();
    assert!(hit(store, "/v/a", now).is_none());
    drop(miss);
    assert_eq!(
        hit(store, "/v/a", now).unwrap().body,
        "first",
        "an abandoned fill leaves the object"
    );

    // A new version: its own copy or nothing, never the old body.
    store_object(store, "/v/a", b"second", 2).await;
    assert!(hit(store, "/v/a", now).is_none());
    assert_eq!(fetch(store, "/v/a").await.unwrap(), b"second");
    heat(store, "/v/a", now);
    assert_eq!(hit(store, "/v/a", now).unwrap().body, "second");

    // A revalidation's new header: never the old one.
    let refreshed = meta_with_etag(6, "\"v2\"");
    assert!(
        store
            .update_meta(&key("/v/a"), &refreshed, &span())
            .await
            .unwrap()
    );
    assert!(hit(store, "/v/a", now).is_none(), "not decoded yet");
    fetch(store, "/v/a").await.unwrap();
    heat(store, "/v/a", now);
    let updated = hit(store, "/v/a", now).unwrap();
    assert_eq!(updated.header.headers.get("etag").unwrap(), "\"v2\"");

    // Purged: gone.
    let compact = key("/v/a").to_compact();
    store
        .purge(
            PurgeTarget::Active(&compact),
            PurgeType::Invalidation,
            &span(),
        )
        .await
        .unwrap();
    assert_eq!(store.stats().thread_copy_bytes, 6 + HEADER_WEIGHT);
    assert!(hit(store, "/v/a", now).is_none());
    assert_eq!(
        store.stats().thread_copy_bytes,
        0,
        "dropped when found retired"
    );
}

#[tokio::test]
async fn a_threads_copies_answer_only_for_their_own_store() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let stores = [open(dirs[0].path()), open(dirs[1].path())];
    let now = SystemTime::now();
    for (store, data) in stores.iter().zip([&b"one"[..], &b"two"[..]]) {
        store_object(store, "/v/a", data, 100).await;
        fetch(store, "/v/a").await.unwrap();
    }
    heat(stores[0], "/v/a", now);
    assert_eq!(hit(stores[1], "/v/a", now).unwrap().body, "two");
    heat(stores[1], "/v/a", now);
    assert_eq!(hit(stores[1], "/v/a", now).unwrap().body, "two");
    assert_eq!(hit(stores[0], "/v/a", now).unwrap().body, "one");
    // The thread keeps copies of one store at a time: store 0's last hit
    // made one again, and store 1's went, their bytes with them.
    let bytes = |s: &DiskStore| s.stats().thread_copy_bytes;
    assert_eq!((bytes(stores[0]), bytes(stores[1])), (3 + HEADER_WEIGHT, 0));
}

#[tokio::test]
async fn a_full_thread_budget_is_replaced_at_a_bounded_rate() {
    // Each thread's budget (an eighth of the memory) holds four copies of
    // a 100-byte body.
    let copy = 100 + HEADER_WEIGHT;
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(crate::cache::store::StoreConfig {
        memory_bytes: 8 * 4 * copy,
        ..config(dir.path())
    });
    let now = SystemTime::now();
    let paths: Vec<String> = (0..10).map(|n| format!("/v/{n}")).collect();
    for path in &paths {
        store_object(store, path, &body(100), 100).await;
        fetch(store, path).await.unwrap();
    }
    let copies = || store.stats().thread_copy_bytes / copy;
    // Four fill the budget, four more replace them (a budget's worth in
    // this window), the ninth is served from the shared copy.
    for path in &paths[..8] {
        heat(store, path, now);
    }
    assert_eq!(copies(), 4);
    // Whether a hit's body is the thread's own, not the memory tier's.
    let from_copy = |path: &str, at| {
        let answer = hit(store, path, at).unwrap();
        let mut memory = store.lock_memory();
        let held = memory.get(&key(path).combined_bin(), None).unwrap();
        answer.body.as_ptr() != held.value.as_ptr()
    };
    heat(store, &paths[8], now);
    assert!(!from_copy(&paths[8], now), "no copy made");
    assert!(from_copy(&paths[7], now), "the last admitted copy answers");
    // The next window allows as much again.
    let next = now + CHURN_WINDOW;
    heat(store, &paths[9], next);
    assert!(from_copy(&paths[9], next), "copied in the next window");
    assert_eq!(copies(), 4);
}

/// A store copying bodies up to 1 MiB into 4 MiB of memory.
fn open_copying_large(dir: &std::path::Path) -> &'static DiskStore {
    open_with(crate::cache::store::StoreConfig {
        memory_bytes: 4 << 20,
        memory_object_max: 1 << 20,
        ..config(dir)
    })
}

#[tokio::test]
async fn a_larger_body_is_copied_into_memory_on_its_second_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copying_large(dir.path());
    let data = body(300 * 1024);
    store_object(store, "/v/large", &data, 300).await;
    let now = SystemTime::now();

    assert_eq!(fetch(store, "/v/large").await.unwrap(), data, "first read");
    assert_eq!(store.stats().memory_bytes, 0, "read once: not copied");
    assert!(hit(store, "/v/large", now).is_none());

    assert_eq!(fetch(store, "/v/large").await.unwrap(), data, "second read");
    assert_eq!(store.stats().memory_bytes, data.len() as u64, "copied");
    let memory_hits = store.stats().memory_hits;
    assert_eq!(fetch(store, "/v/large").await.unwrap(), data, "third read");
    assert_eq!(store.stats().memory_hits, memory_hits + 1, "from memory");

    // Handed out whole on the memory route, never as a thread's copy.
    for _ in 0..3 {
        assert_eq!(
            hit(store, "/v/large", now).expect("a memory hit").body,
            data
        );
    }
    assert_eq!(store.stats().thread_copy_bytes, 0);
}

#[tokio::test]
async fn a_body_over_the_copy_limit_is_always_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copying_large(dir.path());
    let data = body((1 << 20) + 1);
    store_object(store, "/v/larger", &data, 300).await;
    for _ in 0..3 {
        assert_eq!(fetch(store, "/v/larger").await.unwrap(), data);
    }
    assert_eq!(store.stats().memory_bytes, 0);
    assert_eq!(store.stats().memory_hits, 0);
    assert!(hit(store, "/v/larger", SystemTime::now()).is_none());

    // Nor is a slice: the slicer streams those to many readers at once.
    let slice = crate::cache::key::slice::slice("/v/film.mp4", "0123456789abcdef", 2);
    let slice = slice.primary_key_str().unwrap().to_owned();
    let data = body(200 * 1024);
    store_object(store, &slice, &data, 300).await;
    for _ in 0..3 {
        assert_eq!(fetch(store, &slice).await.unwrap(), data);
    }
    assert_eq!(store.stats().memory_bytes, 0);

    // With the default limit a body above 64 KiB is never copied.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(64 * 1024 + 1);
    store_object(store, "/v/medium", &data, 300).await;
    for _ in 0..3 {
        assert_eq!(fetch(store, "/v/medium").await.unwrap(), data);
    }
    assert_eq!(store.stats().memory_bytes, 0);
}

#[tokio::test]
async fn a_purged_larger_body_leaves_memory_with_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copying_large(dir.path());
    let data = body(200 * 1024);
    store_object(store, "/v/large", &data, 300).await;
    fetch(store, "/v/large").await.unwrap();
    fetch(store, "/v/large").await.unwrap();
    assert_eq!(store.stats().memory_bytes, data.len() as u64);
    let entry = store.entries()[0].0.clone();
    let outcome = store
        .purge(PurgeTarget::Exact(&entry), PurgeType::Invalidation, &span())
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        pingora_cache::storage::PurgeOutcome::Purged(_)
    ));
    assert_eq!(store.stats().memory_bytes, 0);
    assert!(fetch(store, "/v/large").await.is_none());
    assert!(hit(store, "/v/large", SystemTime::now()).is_none());
}
