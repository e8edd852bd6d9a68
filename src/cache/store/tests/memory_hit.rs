//! Fresh hits handed out whole from the memory tier: only the plainest case,
//! never another version's body.

use super::support::*;
use pingora_cache::storage::{PurgeType, Storage};
use pingora_cache::{CacheEntryKey, PurgeTarget};
use std::time::{Duration, SystemTime};

fn any(_: &pingora_http::ResponseHeader) -> bool {
    true
}

#[tokio::test]
async fn a_fresh_object_in_memory_is_handed_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(1000);
    let (id, weight) = store_object(store, "/v/a", &data, 300).await;
    let now = SystemTime::now();
    assert!(
        store.memory_hit(&key("/v/a"), now, any).is_none(),
        "no hit has decoded the meta or kept a copy yet"
    );
    assert_eq!(fetch(store, "/v/a").await.unwrap(), data);
    let memory_hits = store.stats().memory_hits;

    let hit = store.memory_hit(&key("/v/a"), now, any).expect("a hit");
    assert_eq!(hit.body, data);
    assert_eq!(hit.header.status.as_u16(), 200);
    assert_eq!(hit.header.headers.get("content-length").unwrap(), "1000");
    assert!(hit.age < Duration::from_secs(5), "{:?}", hit.age);
    let stored = CacheEntryKey::identified(
        key("/v/a").to_compact(),
        pingora_cache::eviction::CacheEntryId::new(id),
    );
    assert_eq!(hit.entry, stored);
    assert_eq!(hit.weight, weight);
    assert!(hit.fresh_until > now + Duration::from_secs(3000));
    assert_eq!(store.stats().memory_hits, memory_hits + 1);

    // The age counts from when the object was stored.
    let later = store
        .memory_hit(&key("/v/a"), now + Duration::from_secs(100), any)
        .unwrap();
    assert!(later.age >= Duration::from_secs(100));

    // Not fresh any more, or refused by the caller: declined, not counted.
    let expired = hit.fresh_until + Duration::from_secs(1);
    assert!(store.memory_hit(&key("/v/a"), expired, any).is_none());
    assert!(store.memory_hit(&key("/v/a"), now, |_| false).is_none());
    assert!(store.memory_hit(&key("/v/b"), now, any).is_none());
    assert_eq!(store.stats().memory_hits, memory_hits + 2);
}

#[tokio::test]
async fn a_fill_a_replacement_or_a_purge_is_never_answered_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/v/a", b"first", 5).await;
    fetch(store, "/v/a").await.unwrap();
    let now = SystemTime::now();
    assert!(store.memory_hit(&key("/v/a"), now, any).is_some());

    // A fill in progress for the key: its readers follow the fill.
    let miss = store
        .get_miss_handler(&key("/v/a"), &meta(Some(6)), &span())
        .await
        .unwrap();
    assert!(store.memory_hit(&key("/v/a"), now, any).is_none());
    drop(miss);
    assert_eq!(
        store.memory_hit(&key("/v/a"), now, any).unwrap().body,
        "first",
        "an abandoned fill leaves the object"
    );

    // A new version: its own copy or nothing, never the old body.
    store_object(store, "/v/a", b"second", 2).await;
    assert!(store.memory_hit(&key("/v/a"), now, any).is_none());
    assert_eq!(fetch(store, "/v/a").await.unwrap(), b"second");
    assert_eq!(
        store.memory_hit(&key("/v/a"), now, any).unwrap().body,
        "second"
    );

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
    assert!(store.memory_hit(&key("/v/a"), now, any).is_none());
}
