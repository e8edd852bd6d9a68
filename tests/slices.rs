//! Slice caching of large objects through the real node and a real
//! S3-compatible origin: random ranges byte for byte on objects around the
//! slice size, cold and warm; what a cold seek pulls from the origin; one
//! version per response when the origin object changes; shared fetches;
//! HEAD without a download; purge.

mod common;

use std::time::Duration;

use common::http::{header, raw};
use common::ranges::{Rng, Spec, check, random_header};
use common::tap::Mode;
use common::world::{ADMIN_TOKEN, World};
use common::{bytes, eventually};

const S: usize = 64 * 1024;

/// The `cache:` settings that slice objects above `threshold` bytes into
/// 64 KiB slices, reading `read_ahead` slices ahead.
fn slicing(read_ahead: u32, threshold: &str) -> String {
    format!(
        "  slice_threshold: {threshold}\n  slice_size: 64KiB\n  read_ahead_slices: {read_ahead}\n"
    )
}

/// Waits until no slice fetch is under way (read-ahead included).
async fn settle(w: &World) {
    let mut last = (u64::MAX, usize::MAX);
    eventually("slice fetches to settle", Duration::from_secs(20), || {
        let now = (w.tap().response_bytes(), w.tap().requests());
        let same = now == last;
        last = now;
        async move {
            let busy = w.metric("cdn_node_slice_fetches_in_progress", &[]).await;
            (same && busy == 0.0).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ranges_on_sliced_objects_match_the_source_cold_and_warm() {
    let sizes = [0, 1, 2, S - 1, S, S + 1, 5 * S + 7, 20 * S + 3];
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("v/s-{i}.mp4"), bytes(n, 200 + i as u64)))
        .collect();
    let w = World::builder()
        .objects(&objects)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for (key, object) in &objects {
        let path = format!("/{key}");
        let len = object.len() as u64;
        // Cold: the first request of the object is a range.
        for _ in 0..40 {
            let (range, specs) = random_header(&mut rng, len);
            let answer = w.request("GET", &path, &[("range", &range)]).await;
            check(object, &range, specs.as_deref(), &answer);
        }
        // The whole object streams the slices in order; HEAD gives its headers.
        let (status, headers, body) = w.request("GET", &path, &[]).await;
        assert_eq!(status, 200, "{key}");
        assert!(body == *object, "{key}");
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        let (status, headers, body) = w.request("HEAD", &path, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-length"), Some(&*len.to_string()));
        assert!(body.is_empty());
        // Warm.
        settle(&w).await;
        let before = w.tap().requests();
        for _ in 0..20 {
            let (range, specs) = random_header(&mut rng, len);
            let answer = w.request("GET", &path, &[("range", &range)]).await;
            check(object, &range, specs.as_deref(), &answer);
        }
        assert_eq!(
            w.tap().requests(),
            before,
            "warm ranges of {key} reached the origin"
        );
    }
    assert!(
        w.metric("cdn_node_slices_served_from_disk_total", &[])
            .await
            > 0.0
    );
}

/// The span of each origin Range GET, sorted.
fn asked_ranges(w: &World) -> Vec<String> {
    let mut asked: Vec<String> = w
        .tap()
        .heads()
        .iter()
        .filter_map(|h| {
            h.to_ascii_lowercase()
                .split("\r\n")
                .find_map(|l| l.strip_prefix("range: bytes=").map(str::to_string))
        })
        .collect();
    asked.sort();
    asked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_seek_pulls_only_its_slice_and_reading_on_pulls_the_read_ahead() {
    let object = bytes(40 * S + 5, 300);
    let w = World::builder()
        .object("v/big.mp4", &object)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    let (a, b) = (20 * S as u64 + 100, 20 * S as u64 + 200);
    let range = format!("bytes={a}-{b}");
    let answer = w.request("GET", "/v/big.mp4", &[("range", &range)]).await;
    check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    settle(&w).await;
    assert_eq!(w.tap().count("HEAD"), 1, "{:#?}", w.tap().heads());
    // The seek lands inside slice 20: its fetch is split there, in two
    // Range GETs. A range read at a random place gets no read-ahead.
    assert_eq!(w.tap().count("GET"), 2, "{:#?}", w.tap().heads());
    let mut want = vec![
        format!("{}-{}", 20 * S, a - 1),
        format!("{a}-{}", 21 * S - 1),
    ];
    want.sort();
    assert_eq!(asked_ranges(&w), want);
    let pulled = w.tap().response_bytes();
    assert!(
        pulled <= S as u64 + 4096,
        "pulled {pulled} bytes from the origin"
    );
    assert!(pulled >= S as u64);
    for head in w.tap().heads().iter().filter(|h| h.starts_with("GET ")) {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nrange: bytes="), "{head}");
        assert!(lower.contains("\r\nif-match: "), "{head}");
    }
    // Playback reads on from where it stopped: slice 21 for the range, and
    // slices 22 and 23 read ahead.
    let (c, d) = (b + 1, 22 * S as u64 - 1);
    let next = format!("bytes={c}-{d}");
    let answer = w.request("GET", "/v/big.mp4", &[("range", &next)]).await;
    check(&object, &next, Some(&[Spec::Closed(c, d)]), &answer);
    settle(&w).await;
    assert_eq!(w.tap().count("GET"), 5, "{:#?}", w.tap().heads());
    want.extend([
        format!("{}-{}", 21 * S, 22 * S - 1),
        format!("{}-{}", 22 * S, 23 * S - 1),
        format!("{}-{}", 23 * S, 24 * S - 1),
    ]);
    want.sort();
    assert_eq!(asked_ranges(&w), want);
    // And on: the read-ahead slices are used from disk.
    let last = format!("bytes={}-{}", 22 * S, 24 * S - 1);
    let answer = w.request("GET", "/v/big.mp4", &[("range", &last)]).await;
    check(
        &object,
        &last,
        Some(&[Spec::Closed(22 * S as u64, 24 * S as u64 - 1)]),
        &answer,
    );
    assert_eq!(header(&answer.1, "x-cache"), Some("HIT"));
    assert_eq!(
        w.metric("cdn_node_slice_read_ahead_total", &[("outcome", "used")])
            .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_range_inside_the_first_slice_costs_one_get_and_no_head() {
    let large = bytes(10 * S + 3, 310);
    let small = bytes(S - 10, 311);
    let w = World::builder()
        .object("v/first.mp4", &large)
        .object("v/short.mp4", &small)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    // (path, object, a range inside the first slice, another one)
    type Case<'a> = (&'a str, &'a [u8], (u64, u64), (u64, u64));
    let cases: [Case; 2] = [
        ("/v/first.mp4", &large, (1000, 2000), (30_000, 40_000)),
        (
            "/v/short.mp4",
            &small,
            (S as u64 - 100, S as u64 - 11),
            (0, 10),
        ),
    ];
    for (path, object, (a, b), (c, d)) in cases {
        let before = w.tap().requests();
        let range = format!("bytes={a}-{b}");
        let answer = w.request("GET", path, &[("range", &range)]).await;
        check(object, &range, Some(&[Spec::Closed(a, b)]), &answer);
        assert_eq!(header(&answer.1, "x-cache"), Some("MISS"), "{path}");
        settle(&w).await;
        // One GET of the first slice, unpinned (it learns the version);
        // no HEAD, and no read-ahead past a range read at random.
        let heads = w.tap().heads()[before..].to_vec();
        assert_eq!(heads.len(), 1, "{path}: {heads:#?}");
        let probe = heads[0].to_ascii_lowercase();
        assert!(probe.starts_with("get "), "{probe}");
        let want = format!("\r\nrange: bytes=0-{}\r\n", S - 1);
        assert!(probe.contains(&want), "{probe}");
        assert!(!probe.contains("\r\nif-match:"), "{probe}");
        // Another range of the first slice: from the store.
        let range = format!("bytes={c}-{d}");
        let answer = w.request("GET", path, &[("range", &range)]).await;
        check(object, &range, Some(&[Spec::Closed(c, d)]), &answer);
        assert_eq!(header(&answer.1, "x-cache"), Some("HIT"), "{path}");
        assert_eq!(w.tap().requests(), before + 1, "{:#?}", w.tap().heads());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_cold_object_downloads_nothing() {
    let object = bytes(10 * S, 301);
    let w = World::builder()
        .object("v/h.mp4", &object)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    for _ in 0..3 {
        let (status, headers, body) = w.request("HEAD", "/v/h.mp4", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "content-length"),
            Some(&*object.len().to_string())
        );
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        assert!(header(&headers, "etag").is_some());
        assert!(body.is_empty());
    }
    assert_eq!(w.tap().count("HEAD"), 1, "{:#?}", w.tap().heads());
    assert_eq!(w.tap().count("GET"), 0, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_at_the_origin_never_yields_mixed_bytes() {
    let old = bytes(10 * S, 400);
    let new = bytes(10 * S, 402);
    let w = World::builder()
        .object("v/r.mp4", &old)
        .tap()
        .cache(&slicing(0, "1"))
        .start()
        .await;
    let first = format!("bytes=0-{}", 2 * S - 1);
    let answer = w.request("GET", "/v/r.mp4", &[("range", &first)]).await;
    check(
        &old,
        &first,
        Some(&[Spec::Closed(0, 2 * S as u64 - 1)]),
        &answer,
    );
    w.s3().put("v/r.mp4", &new);
    // Slices 0-1 are the old version on disk; slice 5 is fetched: the
    // origin's answer shows the change, and the answer is all new bytes.
    let later = format!("bytes={}-{}", 5 * S, 6 * S + 10);
    let answer = w.request("GET", "/v/r.mp4", &[("range", &later)]).await;
    check(
        &new,
        &later,
        Some(&[Spec::Closed(5 * S as u64, 6 * S as u64 + 10)]),
        &answer,
    );
    // The old slices were dropped: the start is new bytes too.
    let answer = w.request("GET", "/v/r.mp4", &[("range", &first)]).await;
    check(
        &new,
        &first,
        Some(&[Spec::Closed(0, 2 * S as u64 - 1)]),
        &answer,
    );
    assert!(w.metric("cdn_node_slice_version_changes_total", &[]).await >= 1.0);
    // A whole-object read spanning a change mid-response is either one
    // version whole, or cut short: never stitched.
    let newer = bytes(10 * S, 404);
    w.s3().put("v/r.mp4", &newer);
    let url = w.url("/v/r.mp4");
    let outcome = match reqwest::get(&url).await {
        Ok(resp) => resp.bytes().await.map(|b| b.to_vec()),
        Err(e) => Err(e),
    };
    if let Ok(got) = outcome {
        assert!(
            got == new || got == newer,
            "mixed or truncated bytes looked complete"
        );
    }
    let (status, _, got) = w.request("GET", "/v/r.mp4", &[]).await;
    assert_eq!(status, 200);
    assert!(got == newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_seekers_share_slice_fetches() {
    let object = bytes(30 * S, 500);
    let w = World::builder()
        .object("v/c.mp4", &object)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    // Learn the object first, so only slice fetches are counted.
    assert_eq!(w.request("HEAD", "/v/c.mp4", &[]).await.0, 200);
    let (a, b) = (10 * S as u64, 12 * S as u64 - 1);
    let range = format!("bytes={a}-{b}");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (node, target, range) = (w.node.http, w.target("/v/c.mp4"), range.clone());
        tasks.push(tokio::spawn(async move {
            raw(node, "GET", &target, &[("range", &range)]).await
        }));
    }
    for t in tasks {
        let answer = t.await.unwrap();
        check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    }
    settle(&w).await;
    // Slices 10 and 11, each fetched once; nothing read ahead past a range
    // read at a random place.
    assert_eq!(w.tap().count("GET"), 2, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_sliced_object_removes_its_slices() {
    let object = bytes(6 * S, 600);
    let w = World::builder()
        .object("v/p.mp4", &object)
        .tap()
        .cache(&slicing(0, "1"))
        .admin_token()
        .start()
        .await;
    let (status, _, got) = w.request("GET", "/v/p.mp4", &[("range", "bytes=0-")]).await;
    assert_eq!(status, 206);
    assert!(got == object);
    // Six slices and the record, once their fills are committed.
    eventually(
        "the slices to be stored",
        Duration::from_secs(10),
        || async { (w.metric("cdn_node_cache_stored_objects", &[]).await == 7.0).then_some(()) },
    )
    .await;
    let (status, _) = w.purge("path=/v/p.mp4", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(w.metric("cdn_node_cache_stored_objects", &[]).await, 0.0);
    let before = w.tap().count("GET");
    let (_, _, got) = w
        .request("GET", "/v/p.mp4", &[("range", "bytes=0-9")])
        .await;
    assert!(got[..] == object[..10]);
    assert_eq!(w.tap().count("GET"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_into_a_cold_slice_does_not_wait_for_the_bytes_before_it() {
    let object = bytes(30 * S, 700);
    let w = World::builder()
        .object("v/seek.mp4", &object)
        .tap()
        .cache(&slicing(0, "1"))
        .start()
        .await;
    assert_eq!(w.request("HEAD", "/v/seek.mp4", &[]).await.0, 200);
    // 60 KiB into slice 20: the part before the seek is held back by the
    // tap after 16 KiB; the 4 KiB from the seek on pass whole.
    let at = 20 * S as u64 + 60 * 1024;
    let range = format!("bytes={at}-{}", at + 999);
    w.tap().set_mode(Mode::HoldAfter(16 * 1024));
    let answer = w.request("GET", "/v/seek.mp4", &[("range", &range)]).await;
    check(
        &object,
        &range,
        Some(&[Spec::Closed(at, at + 999)]),
        &answer,
    );
    // The part before the seek is asked once the seeker's part is answered.
    eventually(
        "the part before the seek",
        Duration::from_secs(10),
        || async { (w.tap().count("GET") == 2).then_some(()) },
    )
    .await;
    // Nothing is complete until the first part arrives too.
    assert_eq!(
        w.metric("cdn_node_slices_fetched_total", &[("trigger", "request")])
            .await,
        0.0
    );
    w.tap().set_mode(Mode::Forward);
    settle(&w).await;
    // The slice was stored whole, in order: read from disk.
    let whole = format!("bytes={}-{}", 20 * S, 21 * S - 1);
    let answer = w.request("GET", "/v/seek.mp4", &[("range", &whole)]).await;
    check(
        &object,
        &whole,
        Some(&[Spec::Closed(20 * S as u64, 21 * S as u64 - 1)]),
        &answer,
    );
    assert_eq!(header(&answer.1, "x-cache"), Some("HIT"));
    assert_eq!(w.tap().count("GET"), 2, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_slice_is_kept_only_when_both_parts_arrived() {
    let object = bytes(30 * S, 701);
    let w = World::builder()
        .object("v/cut.mp4", &object)
        .tap()
        .cache(&slicing(0, "1"))
        .start()
        .await;
    assert_eq!(w.request("HEAD", "/v/cut.mp4", &[]).await.0, 200);
    // The part before the seek dies after 16 KiB; the seeker's own bytes
    // (the last 4 KiB of slice 20) arrive whole and are right.
    let at = 20 * S as u64 + 60 * 1024;
    let range = format!("bytes={at}-{}", at + 999);
    w.tap().set_mode(Mode::CutAfter(16 * 1024));
    let answer = w.request("GET", "/v/cut.mp4", &[("range", &range)]).await;
    check(
        &object,
        &range,
        Some(&[Spec::Closed(at, at + 999)]),
        &answer,
    );
    settle(&w).await;
    w.tap().set_mode(Mode::Forward);
    // Nothing of slice 20 was kept: it is fetched again, and right.
    let before = w.tap().count("GET");
    let start = format!("bytes={}-{}", 20 * S, 20 * S + 99);
    let answer = w.request("GET", "/v/cut.mp4", &[("range", &start)]).await;
    check(
        &object,
        &start,
        Some(&[Spec::Closed(20 * S as u64, 20 * S as u64 + 99)]),
        &answer,
    );
    assert_eq!(header(&answer.1, "x-cache"), Some("MISS"));
    assert_eq!(w.tap().count("GET"), before + 1, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_cold_get_slices_large_objects_and_passes_small_ones() {
    let large = bytes(10 * S + 3, 702);
    let small = bytes(S, 703);
    let w = World::builder()
        .object("v/large.mp4", &large)
        .object("v/small.mp4", &small)
        .tap()
        .cache(&slicing(0, "128KiB"))
        .start()
        .await;
    struct Case {
        path: &'static str,
        status: u16,
        body: Option<Vec<u8>>,
        /// Origin GETs of the cold request: with a Range header (the probe
        /// that learns the object, and slices) and without (the ordinary
        /// whole-object path).
        ranged: usize,
        whole: usize,
    }
    let cases = [
        // The probe's answer is slice 0; slices 1 to 10 follow.
        Case {
            path: "/v/large.mp4",
            status: 200,
            body: Some(large.clone()),
            ranged: 11,
            whole: 0,
        },
        // One slice (64 KiB): whole in the probe's answer.
        Case {
            path: "/v/small.mp4",
            status: 200,
            body: Some(small.clone()),
            ranged: 1,
            whole: 0,
        },
        Case {
            path: "/v/missing.mp4",
            status: 404,
            body: None,
            ranged: 1,
            whole: 1,
        },
    ];
    for c in &cases {
        let heads_before = w.tap().heads().len();
        let (status, headers, got) = w.request("GET", c.path, &[]).await;
        assert_eq!(status, c.status, "{}", c.path);
        if let Some(body) = &c.body {
            assert!(got == *body, "{}", c.path);
            assert_eq!(header(&headers, "x-cache"), Some("MISS"), "{}", c.path);
        }
        settle(&w).await;
        let heads = w.tap().heads()[heads_before..].to_vec();
        let head_requests = heads.iter().filter(|h| h.starts_with("HEAD ")).count();
        let gets: Vec<_> = heads.iter().filter(|h| h.starts_with("GET ")).collect();
        let ranged = gets
            .iter()
            .filter(|h| h.to_ascii_lowercase().contains("\r\nrange: "))
            .count();
        // The first GET is the probe: the object's first slice, unpinned,
        // and the only one from byte 0 (slice 0 is not fetched again).
        let probe = gets.first().expect("a probe GET").to_ascii_lowercase();
        assert!(probe.contains("\r\nrange: bytes=0-65535\r\n"), "{probe}");
        assert!(!probe.contains("\r\nif-match:"), "{probe}");
        let from_zero = gets
            .iter()
            .filter(|h| h.to_ascii_lowercase().contains("\r\nrange: bytes=0-"))
            .count();
        assert_eq!(from_zero, 1, "{}: {heads:#?}", c.path);
        assert_eq!(head_requests, 0, "{}: {heads:#?}", c.path);
        assert_eq!(ranged, c.ranged, "{}: {heads:#?}", c.path);
        assert_eq!(gets.len() - ranged, c.whole, "{}: {heads:#?}", c.path);
    }
    // Warm: both objects answer from the store, without even a HEAD.
    let before = w.tap().requests();
    for (path, body) in [("/v/large.mp4", &large), ("/v/small.mp4", &small)] {
        let (status, headers, got) = w.request("GET", path, &[]).await;
        assert_eq!(status, 200);
        assert!(got == *body, "{path}");
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{path}");
    }
    assert_eq!(w.tap().requests(), before, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_plain_get_of_an_object_within_one_slice_is_one_origin_get() {
    let object = bytes(1024 * 1024, 707);
    // The default 4 MiB slices.
    let w = World::builder()
        .object("v/seg.ts", &object)
        .tap()
        .cache("")
        .start()
        .await;
    let (status, headers, got) = w.request("GET", "/v/seg.ts", &[]).await;
    assert_eq!(status, 200);
    assert!(got == object);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    assert_eq!(header(&headers, "content-length"), Some("1048576"));
    // One GET of the first slice, which held the whole object; no HEAD.
    assert_eq!(w.tap().origin_requests(), (1, 0), "{:#?}", w.tap().heads());
    assert_eq!(w.tap().probes(), 1, "{:#?}", w.tap().heads());
    // Stored whole: the next request is a hit.
    let (status, headers, got) = w.request("GET", "/v/seg.ts", &[]).await;
    assert_eq!(status, 200);
    assert!(got == object);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(w.tap().requests(), 1, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_origin_request_that_learns_the_object() {
    let object = bytes(12 * S, 704);
    let w = World::builder()
        .object("v/one.mp4", &object)
        .tap()
        .cache(&slicing(0, "1"))
        .start()
        .await;
    // The answer of the request that learns the object (a HEAD, or a probe
    // GET when a plain GET comes first) is held until every client is
    // connected.
    w.tap().set_mode(Mode::HoldAfter(0));
    let ranges: [(&str, Option<Spec>); 4] = [
        ("", None),
        ("bytes=0-99", Some(Spec::Closed(0, 99))),
        ("bytes=300000-", Some(Spec::Open(300_000))),
        ("bytes=-5000", Some(Spec::Suffix(5000))),
    ];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (node, target) = (w.node.http, w.target("/v/one.mp4"));
        let (range, spec) = ranges[i % ranges.len()];
        let method = if i % 5 == 4 { "HEAD" } else { "GET" };
        tasks.push(tokio::spawn(async move {
            let extra: Vec<(&str, &str)> = if range.is_empty() {
                Vec::new()
            } else {
                vec![("range", range)]
            };
            (
                method,
                range,
                spec,
                raw(node, method, &target, &extra).await,
            )
        }));
    }
    eventually(
        "every client connected and the object asked for",
        Duration::from_secs(10),
        || async {
            let open = w.metric("cdn_node_connections_open", &[]).await;
            (open >= 20.0 && w.tap().learning() >= 1).then_some(())
        },
    )
    .await;
    w.tap().set_mode(Mode::Forward);
    for t in tasks {
        let (method, range, spec, answer) = t.await.unwrap();
        if method == "HEAD" {
            // Range has no meaning for HEAD (RFC 9110): the whole header.
            assert_eq!(answer.0, 200);
            assert_eq!(
                header(&answer.1, "content-length"),
                Some(&*object.len().to_string())
            );
            assert!(answer.2.is_empty());
        } else {
            let specs = spec.map(|s| vec![s]);
            check(&object, range, specs.as_deref(), &answer);
        }
    }
    assert_eq!(w.tap().learning(), 1, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_on_a_sliced_response_is_no_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let object = bytes(160 * S, 705);
    let w = World::builder()
        .object("v/gone.mp4", &object)
        .tap()
        .cache(&slicing(2, "1"))
        .start()
        .await;
    let target = w.target("/v/gone.mp4");
    let mut s = tokio::net::TcpStream::connect(w.node.http).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = vec![0u8; 64 * 1024];
    let mut n = 0;
    while n < 32 * 1024 {
        let read = s.read(&mut got[n..]).await.unwrap();
        assert!(read > 0, "the node closed early");
        n += read;
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    drop(s);
    let line = eventually("the access log line", Duration::from_secs(20), || async {
        w.node.access_log().into_iter().find(|l| {
            l["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v/gone.mp4"))
        })
    })
    .await;
    // The status sent, not an error of the node's.
    assert_eq!(line["status"], 200, "{line}");
    // No error line for it (Pingora's "Fail to ..." with a status).
    let stderr = w.node.stderr();
    assert!(!stderr.contains("Fail to"), "{stderr}");
    assert!(!stderr.contains("status: 500"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_request_whose_origin_probe_fails_is_answered_as_an_origin_failure() {
    let object = bytes(4 * S, 706);
    let w = World::builder()
        .object("v/fail.mp4", &object)
        .tap()
        .cache(&slicing(0, "1"))
        .configure(|o| o.read_timeout_ms = 1000)
        .start()
        .await;
    struct Case {
        mode: Mode,
        status: u16,
        body: &'static [u8],
        kind: &'static str,
    }
    let cases = [
        // A silent origin: 504 after one read timeout (of the probe GET
        // that learns the object), not a second wait for another GET.
        Case {
            mode: Mode::Stall,
            status: 504,
            body: b"gateway timeout\n",
            kind: "timeout",
        },
        // A connection closed without an answer: the ordinary path tries
        // and answers 502.
        Case {
            mode: Mode::CutAfter(0),
            status: 502,
            body: b"bad gateway\n",
            kind: "reset",
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        w.tap().set_mode(c.mode);
        let path = format!("/v/fail-{i}.mp4");
        let started = std::time::Instant::now();
        let (status, _, body) = w.request("GET", &path, &[]).await;
        assert_eq!(status, c.status, "{:?}", c.mode);
        assert_eq!(body, c.body, "{:?}", c.mode);
        if c.mode == Mode::Stall {
            assert!(
                started.elapsed() < Duration::from_millis(1900),
                "waited {:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            w.metric("cdn_node_origin_errors_total", &[("kind", c.kind)])
                .await,
            1.0,
            "{:?}",
            c.mode
        );
    }
    // The origin back: the object is learnt and served.
    w.tap().set_mode(Mode::Forward);
    let (status, _, body) = w.request("GET", "/v/fail.mp4", &[]).await;
    assert_eq!(status, 200);
    assert!(body == object);
}
