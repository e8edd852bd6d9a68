//! Purges (exact, active, by prefix) and header rewrites.

use super::support::*;
use crate::cache::store::{DiskStore, format};
use pingora_cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora_cache::storage::{PurgeOutcome, PurgeTarget, PurgeType, Storage};
use std::time::{Duration, SystemTime};

fn exact(path: &str, id: u64) -> CacheEntryKey {
    CacheEntryKey::identified(key(path).to_compact(), CacheEntryId::new(id))
}

#[tokio::test]
async fn exact_purge_of_an_old_fill_spares_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (old, _) = store_object(store, "/v/a.mp4", b"old", 1).await;
    let (new, _) = store_object(store, "/v/a.mp4", b"new", 1).await;
    let ev = PurgeType::Eviction;
    let outcome = store
        .purge(PurgeTarget::Exact(&exact("/v/a.mp4", old)), ev, &span())
        .await;
    assert_eq!(outcome.unwrap(), PurgeOutcome::NotFound);
    assert_eq!(fetch(store, "/v/a.mp4").await.unwrap(), b"new");
    // A key-only identity matches no entry of this store.
    let key_only = CacheEntryKey::key_only(key("/v/a.mp4").to_compact());
    let outcome = store
        .purge(PurgeTarget::Exact(&key_only), ev, &span())
        .await;
    assert_eq!(outcome.unwrap(), PurgeOutcome::NotFound);
    let outcome = store
        .purge(PurgeTarget::Exact(&exact("/v/a.mp4", new)), ev, &span())
        .await;
    assert_eq!(
        outcome.unwrap(),
        PurgeOutcome::Purged(Some(CacheEntryId::new(new)))
    );
    assert!(fetch(store, "/v/a.mp4").await.is_none());
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(store.stats().objects_stored, 0);
}

#[tokio::test]
async fn active_purge_reports_the_id_and_stops_fills() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (id, _) = store_object(store, "/v/a.mp4", b"abc", 1).await;
    let mut miss = store
        .get_miss_handler(&key("/v/a.mp4"), &meta(Some(3)), &span())
        .await
        .unwrap();
    let compact = key("/v/a.mp4").to_compact();
    let inv = PurgeType::Invalidation;
    let outcome = store
        .purge(PurgeTarget::Active(&compact), inv, &span())
        .await;
    assert_eq!(
        outcome.unwrap(),
        PurgeOutcome::Purged(Some(CacheEntryId::new(id)))
    );
    // The fill started before the purge is neither offered nor committed,
    // but its own reader still gets its body.
    assert!(
        store
            .lookup(&key("/v/a.mp4"), &span())
            .await
            .unwrap()
            .is_none()
    );
    let (_, mut own) = store
        .lookup_streaming_write(&key("/v/a.mp4"), miss.streaming_write_tag(), &span())
        .await
        .unwrap()
        .unwrap();
    miss.write_body("xyz".into(), true).await.unwrap();
    assert_eq!(read_all(&mut own).await.unwrap(), b"xyz");
    miss.finish().await.unwrap();
    committed(store).await;
    assert!(fetch(store, "/v/a.mp4").await.is_none());
    assert!(files_under(dir.path()).is_empty());
    let outcome = store
        .purge(PurgeTarget::Active(&compact), inv, &span())
        .await;
    assert_eq!(outcome.unwrap(), PurgeOutcome::NotFound);
}

#[tokio::test]
async fn purge_prefix_removes_matching_objects_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/courses/101/a.mp4", b"a", 1).await;
    store_object(store, "/courses/101/b.mp4?partNumber=1", b"b", 1).await;
    let (keep, _) = store_object(store, "/courses/1010/c.mp4", b"c", 1).await;
    let reopened = open(dir.path());
    let mut removed: Vec<_> = reopened
        .purge_prefix("/courses/101/")
        .await
        .into_iter()
        .map(|(k, primary)| {
            assert!(primary.starts_with(b"/courses/101/"));
            k
        })
        .collect();
    removed.sort();
    assert_eq!(removed.len(), 2);
    assert!(removed.iter().all(|k| k.entry_id().is_some()));
    assert!(
        removed
            .iter()
            .any(|k| *k.key() == key("/courses/101/a.mp4").to_compact())
    );
    assert!(fetch(reopened, "/courses/101/a.mp4").await.is_none());
    assert_eq!(fetch(reopened, "/courses/1010/c.mp4").await.unwrap(), b"c");
    assert_eq!(reopened.entries().len(), 1);
    assert_eq!(reopened.entries()[0].0.entry_id().unwrap().get(), keep);
    assert!(reopened.purge_prefix("/nothing").await.is_empty());
}

#[tokio::test]
async fn update_meta_rewrites_the_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(10_000);
    let (id, _) = store_object(store, "/v/a.mp4", &data, 999).await;
    let body_path = files_under(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".body"))
        .unwrap();
    let inode_before = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(dir.path().join(&body_path)).unwrap(),
    );

    let mut refreshed = meta_with_etag(10_000, "\"v2\"");
    let later = SystemTime::now() + Duration::from_secs(86_400);
    refreshed.update_freshness(later, 0, 0);
    assert!(
        store
            .update_meta(&key("/v/a.mp4"), &refreshed, &span())
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_meta(&key("/missing"), &refreshed, &span())
            .await
            .unwrap()
    );

    for s in [store, open(dir.path())] {
        let (m, mut hit) = s.lookup(&key("/v/a.mp4"), &span()).await.unwrap().unwrap();
        assert_eq!(m.headers().get("etag").unwrap(), "\"v2\"");
        assert_eq!(hit.entry_id().unwrap().get(), id);
        assert_eq!(read_all(&mut hit).await.unwrap(), data);
        let fresh = s.entries()[0].2;
        assert!(fresh > SystemTime::now() + Duration::from_secs(80_000));
    }
    let inode_after = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(dir.path().join(&body_path)).unwrap(),
    );
    assert_eq!(inode_before, inode_after, "the body file was not rewritten");
    assert_eq!(files_under(dir.path()).len(), 2);
    // The meta file on disk decodes to the new header.
    let meta_path = files_under(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".meta"))
        .unwrap();
    let h = format::decode_meta(&std::fs::read(dir.path().join(meta_path)).unwrap()).unwrap();
    assert_eq!(h.entry_id, id);
    assert_eq!(h.body_len, 10_000);
}

/// The serialized meta each of `n` hits of `path` gets.
async fn hit_metas(store: &'static DiskStore, path: &str, n: usize) -> Vec<Vec<u8>> {
    let mut metas = Vec::new();
    for _ in 0..n {
        let (m, _) = store.lookup(&key(path), &span()).await.unwrap().unwrap();
        metas.push(serialized(&m));
    }
    metas
}

fn serialized(m: &pingora_cache::CacheMeta) -> Vec<u8> {
    let (internal, header) = m.serialize().unwrap();
    [internal, header].concat()
}

/// Hits keep what the first decode of a meta learnt; a rewrite must not
/// leave them serving the old meta.
#[tokio::test]
async fn hits_after_a_rewrite_get_the_new_meta() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/v/a.mp4", &body(1000), 999).await;
    let first = hit_metas(store, "/v/a.mp4", 3).await;
    assert!(first.iter().all(|m| *m == first[0]));

    // As Pingora revalidates: `updated` moves, so does the freshness.
    let mut refreshed = meta(Some(1000));
    refreshed.update_freshness(SystemTime::now() + Duration::from_secs(7200), 30, 60);
    refreshed
        .response_header_mut()
        .insert_header("etag", "\"v2\"")
        .unwrap();
    let want = serialized(&refreshed);
    assert_ne!(want, first[0]);
    assert!(
        store
            .update_meta(&key("/v/a.mp4"), &refreshed, &span())
            .await
            .unwrap()
    );
    assert_eq!(hit_metas(store, "/v/a.mp4", 3).await, vec![want; 3]);
    let (m, _) = store
        .lookup(&key("/v/a.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.updated(), refreshed.updated());

    // Rewritten again, to a meta hits build from its parts.
    let again = meta(Some(1000));
    let want = serialized(&again);
    assert!(
        store
            .update_meta(&key("/v/a.mp4"), &again, &span())
            .await
            .unwrap()
    );
    assert_eq!(hit_metas(store, "/v/a.mp4", 3).await, vec![want; 3]);
}

/// A purge with a time removes what was stored before it and spares what
/// was stored since: replaying it later removes nothing new.
#[tokio::test]
async fn a_timed_purge_spares_objects_stored_after_its_time() {
    use crate::cache::purge::{Matcher, Scope, TimedPurge};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_object(store, "/v/old.mp4", b"old", 1).await;
    let purge_time = SystemTime::now() + Duration::from_secs(1);
    let matcher = |before| {
        Matcher::new(&[TimedPurge {
            scope: Scope::Prefix("/v/".into()),
            before,
        }])
    };
    let earlier = matcher(SystemTime::now() - Duration::from_secs(3600));
    assert!(
        store
            .purge_where(|p, m| earlier.matches(p, m))
            .await
            .is_empty()
    );
    let now = matcher(purge_time);
    let removed = store.purge_where(|p, m| now.matches(p, m)).await;
    assert_eq!(removed.len(), 1);
    assert!(fetch(store, "/v/old.mp4").await.is_none());
}

/// A purge just after a fill finished removes the object and counts it,
/// whether its commit, which runs on after the request, is done or not.
#[tokio::test]
async fn a_purge_just_after_a_fill_finished_removes_it_committed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let inv = PurgeType::Invalidation;
    for (n, by_prefix) in [(0, false), (1, true)] {
        let path = format!("/v/fresh-{n}.mp4");
        let mut miss = store
            .get_miss_handler(&key(&path), &meta(Some(3)), &span())
            .await
            .unwrap();
        miss.write_body("abc".into(), true).await.unwrap();
        miss.finish().await.unwrap();
        if by_prefix {
            assert_eq!(store.purge_prefix(&path).await.len(), 1);
        } else {
            let compact = key(&path).to_compact();
            let outcome = store
                .purge(PurgeTarget::Active(&compact), inv, &span())
                .await
                .unwrap();
            assert!(
                matches!(outcome, PurgeOutcome::Purged(Some(_))),
                "{outcome:?}"
            );
        }
        committed(store).await;
        assert!(fetch(store, &path).await.is_none(), "{path}");
    }
    assert!(files_under(&dir.path().join("objects")).is_empty());
}
