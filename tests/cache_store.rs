//! The disk cache's store through the real node: eviction under
//! `max_size`, no fills without free space or over `max_object_size`, purge
//! by URL and by prefix, and the memory copies of small hot objects, which
//! answer as the disk does and never outlive their object.

mod common;

use std::time::Duration;

use common::http::{header, metric, raw};
use common::world::{ADMIN_TOKEN, World};
use common::{bytes, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_store_under_max_size() {
    let objects: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("v/{i}.mp4"), bytes(200_000, 10 + i)))
        .collect();
    let max = 1_000_000u64;
    let w = World::builder()
        .objects(&objects)
        .tap()
        .cache(&format!("  max_size: {max}\n  max_object_size: 500000\n"))
        .start()
        .await;
    for (key, body) in &objects {
        let (status, _, got) = w.get(&format!("/{key}")).await;
        assert_eq!(status, 200);
        assert!(got == *body);
        // Eviction runs right after each fill is committed.
        eventually(
            "the store to be back under max_size",
            Duration::from_secs(10),
            || async {
                let m = w.node.metrics().await;
                (metric(&m, "cdn_node_cache_stored_bytes", &[]) <= max as f64).then_some(())
            },
        )
        .await;
    }
    let m = w.node.metrics().await;
    assert!(metric(&m, "cdn_node_cache_evictions_total", &[]) >= 1.0);
    let on_disk: u64 = walk(w.cache_dir());
    assert!(on_disk <= max + 64 * 1024, "{on_disk} bytes on disk");
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_room_on_disk_objects_are_served_uncached() {
    let body = bytes(600_000, 40);
    let small = bytes(1000, 41);
    // No filesystem here has 1000 TiB free: every fill is refused.
    let w = World::builder()
        .object("v/h.mp4", &body)
        .object("v/i.mp4", &small)
        .tap()
        .cache("  min_free_space: 1000TiB\n")
        .start()
        .await;
    for _ in 0..2 {
        let (status, headers, got) = w.get("/v/h.mp4").await;
        assert_eq!(status, 200);
        assert!(got == body);
        assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    }
    // Nothing is stored, not even the object's record: a probe GET each
    // time, which brings it whole.
    assert_eq!(w.tap().origin_requests(), (2, 0));
    assert_eq!(w.tap().probes(), 2);
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_refused_fills_total", &[]), 4.0);
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_max_object_size_are_served_uncached() {
    let big = bytes(300_000, 42);
    let w = World::builder()
        .object("v/j.mp4", &big)
        .tap()
        .cache("  max_object_size: 100000\n")
        .start()
        .await;
    for _ in 0..2 {
        let (status, _, got) = w.get("/v/j.mp4").await;
        assert_eq!(status, 200);
        assert!(got == big);
    }
    // The record is kept (it is small): one probe GET, then a GET each time.
    assert_eq!(w.tap().origin_requests(), (3, 0));
    assert_eq!(w.tap().probes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_url_and_by_prefix() {
    let x = bytes(1000, 20);
    let w = World::builder()
        .object("courses/101/a.mp4", &x)
        .object("courses/101/b.mp4", &x)
        .object("courses/1011/c.mp4", &x)
        .object("courses/202/d.mp4", &x)
        .tap()
        .cache("")
        .admin_token()
        .start()
        .await;
    for p in [
        "/courses/101/a.mp4",
        "/courses/101/b.mp4",
        "/courses/1011/c.mp4",
        "/courses/202/d.mp4",
    ] {
        assert_eq!(w.get(p).await.0, 200);
    }
    assert_eq!(
        w.purge("path=/courses/101/a.mp4", "wrong-token-wrong-token")
            .await
            .0,
        401
    );
    assert_eq!(
        w.purge("path=/courses/101/a.mp4", ADMIN_TOKEN).await,
        // Its record goes too, but is not counted: it is no body.
        (200, b"{\"purged\":1}\n".to_vec())
    );
    assert_eq!(
        header(&w.get("/courses/101/a.mp4").await.1, "x-cache"),
        Some("MISS")
    );
    assert_eq!(
        w.purge("prefix=/courses/101/", ADMIN_TOKEN).await,
        (200, b"{\"purged\":2}\n".to_vec())
    );
    assert_eq!(
        header(&w.get("/courses/101/b.mp4").await.1, "x-cache"),
        Some("MISS")
    );
    assert_eq!(
        header(&w.get("/courses/1011/c.mp4").await.1, "x-cache"),
        Some("HIT")
    );
    assert_eq!(
        header(&w.get("/courses/202/d.mp4").await.1, "x-cache"),
        Some("HIT")
    );
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_purged_objects_total", &[]), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_hot_objects_are_served_from_memory_and_never_outlive_their_object() {
    let first = bytes(3000, 40);
    let mut w = World::builder()
        .object("v/small.mp4", &first)
        .tap()
        .cache("")
        .admin_token()
        .start()
        .await;
    let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
    // Fill, then a hit read from disk (which keeps a copy; a request racing
    // the fill's commit reads the fill instead), then memory hits: from the
    // third on, the worker threads answer from copies of their own.
    let m = {
        let (w, first) = (&w, &first);
        eventually(
            "six hits from memory",
            Duration::from_secs(10),
            || async move {
                let (status, _, got) = w.get("/v/small.mp4").await;
                assert_eq!(status, 200);
                assert!(got == *first);
                let m = w.node.metrics().await;
                (memory_hits(&m) >= 6.0).then_some(m)
            },
        )
        .await
    };
    assert_eq!(metric(&m, "cdn_node_cache_memory_bytes", &[]), 3000.0);
    // At least one worker thread holds its own copy: body plus 512.
    let copies = metric(&m, "cdn_node_cache_thread_copy_bytes", &[]);
    assert!(copies > 0.0 && copies % 3512.0 == 0.0, "{copies}");
    // The probe GET brought it whole.
    assert_eq!(w.tap().origin_requests(), (1, 0));
    // A range of a memory copy.
    let (status, _, got) = w
        .request("GET", "/v/small.mp4", &[("range", "bytes=100-199")])
        .await;
    assert_eq!(status, 206);
    assert!(got == first[100..200]);

    // The object changes at the origin and is purged: the copy goes with it.
    let second = bytes(2000, 41);
    w.s3().put("v/small.mp4", &second);
    assert_eq!(
        w.purge("path=/v/small.mp4", ADMIN_TOKEN).await,
        (200, b"{\"purged\":1}\n".to_vec())
    );
    assert_eq!(
        metric(&w.node.metrics().await, "cdn_node_cache_memory_bytes", &[]),
        0.0
    );
    for _ in 0..3 {
        let (status, _, got) = w.get("/v/small.mp4").await;
        assert_eq!(status, 200);
        assert!(got == second, "a purged object's copy was served");
    }
    // The record was purged with the object: a probe GET again, which
    // brings the new version whole.
    assert_eq!(w.tap().origin_requests(), (2, 0));
    assert_eq!(w.tap().probes(), 2);

    // Copies are memory only: after a restart the object is read from disk
    // (the object and its record committed first).
    w.stored(2.0).await;
    w.restart().await;
    let (status, headers, got) = w.get("/v/small.mp4").await;
    assert_eq!((status, header(&headers, "x-cache")), (200, Some("HIT")));
    assert!(got == second);
    assert_eq!(w.tap().origin_requests(), (2, 0));
}

/// With `memory_object_max_size` raised, a larger hot object is copied into
/// memory on its second read from disk and answered from there, whole and
/// in ranges, until it is purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_hot_object_is_served_from_memory_once_read_twice() {
    let object = bytes(3 << 20, 43);
    let w = World::builder()
        .object("v/segment.ts", &object)
        .tap()
        .cache("  memory_size: 64MiB\n  memory_object_max_size: 8MiB\n")
        .admin_token()
        .start()
        .await;
    let memory = |m: &str| {
        (
            metric(m, "cdn_node_cache_memory_hits_total", &[]),
            metric(m, "cdn_node_cache_memory_bytes", &[]),
        )
    };
    {
        let (w, object) = (&w, &object);
        eventually("a copy in memory", Duration::from_secs(10), || async move {
            let (status, _, got) = w.get("/v/segment.ts").await;
            assert_eq!(status, 200);
            assert!(got == *object);
            let m = w.node.metrics().await;
            (memory(&m).1 == object.len() as f64).then_some(())
        })
        .await;
    }
    let (hits_before, _) = memory(&w.node.metrics().await);
    let fetched = w.tap().origin_requests();
    for _ in 0..3 {
        let (status, headers, got) = w.get("/v/segment.ts").await;
        assert_eq!((status, header(&headers, "x-cache")), (200, Some("HIT")));
        assert!(got == object);
    }
    let (status, _, got) = w
        .request(
            "GET",
            "/v/segment.ts",
            &[("range", "bytes=1000000-1999999")],
        )
        .await;
    assert_eq!(status, 206);
    assert!(got == object[1_000_000..2_000_000]);
    let (hits_after, held) = memory(&w.node.metrics().await);
    assert_eq!(hits_after - hits_before, 4.0, "every hit from memory");
    assert_eq!(held, object.len() as f64, "no thread copies of it");
    assert_eq!(
        metric(
            &w.node.metrics().await,
            "cdn_node_cache_thread_copy_bytes",
            &[]
        ),
        0.0
    );
    assert_eq!(w.tap().origin_requests(), fetched, "no origin request");

    assert_eq!(
        w.purge("path=/v/segment.ts", ADMIN_TOKEN).await,
        (200, b"{\"purged\":1}\n".to_vec())
    );
    assert_eq!(memory(&w.node.metrics().await).1, 0.0, "the copy went");
    let changed = bytes(3 << 20, 44);
    w.s3().put("v/segment.ts", &changed);
    let (status, _, got) = w.get("/v/segment.ts").await;
    assert_eq!(status, 200);
    assert!(got == changed, "a purged object's copy was served");
}

/// A fresh hit held in memory is answered without Pingora's cache phases:
/// the answer must be the one Pingora's hit path gives. A conditional GET
/// that does not match takes Pingora's path and answers the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hit_answers_as_the_ordinary_hit_path_does() {
    let object = bytes(1024, 42);
    let w = World::builder()
        .object("v/hot.mp4", &object)
        .tap()
        .cache("")
        .start()
        .await;
    let target = w.target("/v/hot.mp4");
    let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
    {
        let (w, target) = (&w, &target);
        eventually("hits from memory", Duration::from_secs(10), || async move {
            let (status, _, _) = raw(w.node.http, "GET", target, &[]).await;
            assert_eq!(status, 200);
            let m = w.node.metrics().await;
            (memory_hits(&m) >= 2.0).then_some(())
        })
        .await;
    }
    let before = w.node.metrics().await;
    // Age and Date may tick between the two answers; every other field is
    // equal.
    let without_clock = |h: common::http::Headers| -> common::http::Headers {
        h.into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("age") && !n.eq_ignore_ascii_case("date"))
            .collect()
    };
    let other_tag = [("if-none-match", "\"not-this-one\"")];
    // Three rounds: the hot object's later hits come from the worker
    // threads' own copies.
    let methods = ["GET", "HEAD"].repeat(3);
    for method in methods {
        let (status, fast, body) = raw(w.node.http, method, &target, &[]).await;
        let (o_status, ordinary, o_body) = raw(w.node.http, method, &target, &other_tag).await;
        assert_eq!((status, o_status), (200, 200), "{method}");
        assert_eq!(header(&fast, "x-cache"), Some("HIT"), "{method}");
        assert!(header(&fast, "age").is_some(), "{method}: no Age");
        assert!(header(&fast, "date").is_some(), "{method}: no Date");
        assert_eq!(without_clock(fast), without_clock(ordinary), "{method}");
        assert_eq!(body, o_body, "{method}");
        let want: &[u8] = if method == "GET" { &object } else { b"" };
        assert!(body == want, "{method}: body");
    }
    let after = w.node.metrics().await;
    let hits = |m: &str| metric(m, "cdn_node_cache_lookups_total", &[("result", "hit")]);
    assert_eq!(hits(&after) - hits(&before), 12.0, "every hit counted");
    assert_eq!(memory_hits(&after) - memory_hits(&before), 12.0);
    assert_eq!(w.tap().origin_requests(), (1, 0));
}
