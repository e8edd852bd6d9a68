//! Slice caching of large objects through the real node and a real
//! S3-compatible origin: random ranges byte for byte on objects around the
//! slice size, cold and warm; what a cold seek pulls from the origin; one
//! version per response when the origin object changes; shared fetches;
//! HEAD without a download; purge.

mod common;

use std::time::Duration;

use common::http::{header, metric, raw};
use common::node::{Node, Options, cache_section};
use common::ranges::{Rng, Spec, check, random_header};
use common::s3::S3;
use common::tap::Tap;
use common::token::{good_claims, hs256};
use common::{bytes, eventually};

const S: usize = 64 * 1024;
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

struct World {
    s3: S3,
    tap: Tap,
    _cache_dir: tempfile::TempDir,
    node: Node,
    token: String,
}

async fn world(objects: &[(&str, &[u8])], read_ahead: u32) -> World {
    let s3 = S3::start(objects).await;
    let tap = Tap::start(s3.port).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(tap.port);
    opts.cache = Some(cache_section(
        cache_dir.path(),
        &format!("  slice_threshold: 1\n  slice_size: 64KiB\n  read_ahead_slices: {read_ahead}\n"),
    ));
    opts.admin_token = Some(ADMIN_TOKEN.into());
    let node = Node::start(opts).await;
    World {
        s3,
        tap,
        _cache_dir: cache_dir,
        node,
        token: hs256(&good_claims("alice")),
    }
}

impl World {
    async fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (u16, common::http::Headers, Vec<u8>) {
        raw(
            self.node.http,
            method,
            &format!("{path}?jwt={}", self.token),
            extra,
        )
        .await
    }

    fn count(&self, method: &str) -> usize {
        self.tap
            .heads()
            .iter()
            .filter(|h| h.starts_with(&format!("{method} ")))
            .count()
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.node.metrics().await, name, labels)
    }

    /// Waits until no slice fetch is under way (read-ahead included).
    async fn settle(&self) {
        let mut last = (u64::MAX, usize::MAX);
        eventually("slice fetches to settle", Duration::from_secs(20), || {
            let now = (self.tap.response_bytes(), self.tap.requests());
            let same = now == last;
            last = now;
            let node = &self.node;
            async move {
                let m = node.metrics().await;
                let fetched = metric(
                    &m,
                    "cdn_node_slices_fetched_total",
                    &[("trigger", "request")],
                ) + metric(
                    &m,
                    "cdn_node_slices_fetched_total",
                    &[("trigger", "read_ahead")],
                );
                let ranges = metric(&m, "cdn_node_origin_range_requests_total", &[]);
                (same && fetched == ranges).then_some(())
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ranges_on_sliced_objects_match_the_source_cold_and_warm() {
    let sizes = [0, 1, 2, S - 1, S, S + 1, 5 * S + 7, 20 * S + 3];
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("v/s-{i}.mp4"), bytes(n, 200 + i as u64)))
        .collect();
    let refs: Vec<(&str, &[u8])> = objects.iter().map(|(k, b)| (k.as_str(), &b[..])).collect();
    let w = world(&refs, 2).await;
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
        w.settle().await;
        let before = w.tap.requests();
        for _ in 0..20 {
            let (range, specs) = random_header(&mut rng, len);
            let answer = w.request("GET", &path, &[("range", &range)]).await;
            check(object, &range, specs.as_deref(), &answer);
        }
        assert_eq!(
            w.tap.requests(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_seek_pulls_only_its_slices_and_the_read_ahead() {
    let object = bytes(40 * S + 5, 300);
    let w = world(&[("v/big.mp4", &object)], 2).await;
    let (a, b) = (20 * S as u64 + 100, 20 * S as u64 + 200);
    let range = format!("bytes={a}-{b}");
    let answer = w.request("GET", "/v/big.mp4", &[("range", &range)]).await;
    check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    w.settle().await;
    assert_eq!(w.count("HEAD"), 1, "{:#?}", w.tap.heads());
    assert_eq!(w.count("GET"), 3, "{:#?}", w.tap.heads());
    // One slice for the range, two read ahead, plus response heads.
    let pulled = w.tap.response_bytes();
    assert!(
        pulled <= 3 * S as u64 + 4096,
        "pulled {pulled} bytes from the origin"
    );
    assert!(pulled >= 3 * S as u64);
    for head in w.tap.heads().iter().filter(|h| h.starts_with("GET ")) {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nrange: bytes="), "{head}");
        assert!(lower.contains("\r\nif-match: "), "{head}");
    }
    // Playback goes on: the read-ahead slices are used from disk.
    let next = format!("bytes={}-{}", 21 * S, 23 * S - 1);
    let answer = w.request("GET", "/v/big.mp4", &[("range", &next)]).await;
    check(
        &object,
        &next,
        Some(&[Spec::Closed(21 * S as u64, 23 * S as u64 - 1)]),
        &answer,
    );
    assert_eq!(header(&answer.1, "x-cache"), Some("HIT"));
    assert_eq!(
        w.metric("cdn_node_slice_read_ahead_total", &[("outcome", "used")])
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_cold_object_downloads_nothing() {
    let object = bytes(10 * S, 301);
    let w = world(&[("v/h.mp4", &object)], 2).await;
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
    assert_eq!(w.count("HEAD"), 1, "{:#?}", w.tap.heads());
    assert_eq!(w.count("GET"), 0, "{:#?}", w.tap.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_at_the_origin_never_yields_mixed_bytes() {
    let old = bytes(10 * S, 400);
    let new = bytes(10 * S, 402);
    let w = world(&[("v/r.mp4", &old)], 0).await;
    let first = format!("bytes=0-{}", 2 * S - 1);
    let answer = w.request("GET", "/v/r.mp4", &[("range", &first)]).await;
    check(
        &old,
        &first,
        Some(&[Spec::Closed(0, 2 * S as u64 - 1)]),
        &answer,
    );
    w.s3.put("v/r.mp4", &new);
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
    w.s3.put("v/r.mp4", &newer);
    let url = w.node.url(&format!("/v/r.mp4?jwt={}", w.token));
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
    let w = world(&[("v/c.mp4", &object)], 2).await;
    // Learn the object first, so only slice fetches are counted.
    assert_eq!(w.request("HEAD", "/v/c.mp4", &[]).await.0, 200);
    let (a, b) = (10 * S as u64, 12 * S as u64 - 1);
    let range = format!("bytes={a}-{b}");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (node, target, range) = (
            w.node.http,
            format!("/v/c.mp4?jwt={}", w.token),
            range.clone(),
        );
        tasks.push(tokio::spawn(async move {
            raw(node, "GET", &target, &[("range", &range)]).await
        }));
    }
    for t in tasks {
        let answer = t.await.unwrap();
        check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    }
    w.settle().await;
    // Slices 10 and 11, and 12-13 read ahead: each fetched once.
    assert_eq!(w.count("GET"), 4, "{:#?}", w.tap.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_sliced_object_removes_its_slices() {
    let object = bytes(6 * S, 600);
    let w = world(&[("v/p.mp4", &object)], 0).await;
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
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, _, _) = raw(
        w.node.admin,
        "POST",
        "/purge?path=/v/p.mp4",
        &[("authorization", &auth), ("content-length", "0")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(w.metric("cdn_node_cache_stored_objects", &[]).await, 0.0);
    let before = w.count("GET");
    let (_, _, got) = w
        .request("GET", "/v/p.mp4", &[("range", "bytes=0-9")])
        .await;
    assert!(got[..] == object[..10]);
    assert_eq!(w.count("GET"), before + 1);
}
