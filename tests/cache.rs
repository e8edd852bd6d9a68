//! The disk cache through the real node: hits without origin traffic, one
//! fetch for many concurrent clients, failed fills never kept, crashes and
//! restarts, eviction bounds and purge.

mod common;

use std::time::Duration;

use common::http::{header, metric, raw};
use common::node::{Node, Options, cache_section};
use common::s3::S3;
use common::tap::{Mode, Tap};
use common::token::{good_claims, hs256};
use common::{bytes, eventually};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

struct World {
    /// Kept alive for the origin; dropped with the world.
    s3: S3,
    tap: Tap,
    cache_dir: tempfile::TempDir,
    node: Node,
    token: String,
}

fn options(tap: &Tap, cache_dir: &std::path::Path, extra: &str) -> Options {
    let mut o = Options::new(tap.port);
    o.cache = Some(cache_section(cache_dir, extra));
    o.admin_token = Some(ADMIN_TOKEN.into());
    o
}

async fn world(objects: &[(&str, &[u8])], extra: &str) -> World {
    let s3 = S3::start(objects).await;
    let tap = Tap::start(s3.port).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let node = Node::start(options(&tap, cache_dir.path(), extra)).await;
    World {
        s3,
        tap,
        cache_dir,
        node,
        token: hs256(&good_claims("alice")),
    }
}

impl World {
    async fn get(&self, path: &str) -> (u16, common::http::Headers, Vec<u8>) {
        raw(
            self.node.http,
            "GET",
            &format!("{path}?jwt={}", self.token),
            &[],
        )
        .await
    }

    /// Origin requests so far: (GETs, HEADs). The first plain GET of an
    /// object the node does not hold is a probe GET of its first 64 KiB
    /// (`Range: bytes=0-65535`): it learns the size (to choose between
    /// slices and the whole object) and brings a smaller object whole; a
    /// larger one then costs the ordinary GET too.
    fn origin_requests(&self) -> (usize, usize) {
        let heads = self.tap.heads();
        let count = |m: &str| heads.iter().filter(|h| h.starts_with(m)).count();
        (count("GET "), count("HEAD "))
    }

    /// Origin probe GETs so far: the first 64 KiB, not pinned to a version.
    fn probes(&self) -> usize {
        self.tap
            .heads()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| {
                h.starts_with("get ")
                    && h.contains("\r\nrange: bytes=0-65535\r\n")
                    && !h.contains("\r\nif-match:")
            })
            .count()
    }

    async fn restart(&mut self) {
        self.node.kill();
        self.node = Node::start(options(&self.tap, self.cache_dir.path(), "")).await;
    }

    async fn purge(&self, query: &str, token: &str) -> (u16, Vec<u8>) {
        let auth = format!("Bearer {token}");
        let (status, _, body) = raw(
            self.node.admin,
            "POST",
            &format!("/purge?{query}"),
            &[("authorization", &auth), ("content-length", "0")],
        )
        .await;
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_never_reaches_the_origin() {
    let body = bytes(3 * 1024 * 1024 + 5, 1);
    let w = world(&[("v/a.mp4", &body)], "").await;
    let (status, headers, got) = w.get("/v/a.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    // Another student, another token: the same cached copy.
    let other = hs256(&good_claims("bob"));
    let (status, headers, got) =
        raw(w.node.http, "GET", &format!("/v/a.mp4?token={other}"), &[]).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    // The probe GET that learnt the object, and the GET that filled it.
    assert_eq!(w.origin_requests(), (2, 0));
    assert_eq!(w.probes(), 1);
    let m = w.node.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_cache_lookups_total", &[("result", "hit")]),
        1.0
    );
    assert_eq!(
        metric(&m, "cdn_node_cache_lookups_total", &[("result", "miss")]),
        1.0
    );
    // The object and its record.
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 2.0);
    assert!(metric(&m, "cdn_node_cache_stored_bytes", &[]) >= body.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_cold_requests_make_one_origin_fetch() {
    let body = bytes(4 * 1024 * 1024, 2);
    let w = world(&[("v/b.mp4", &body)], "").await;
    let url = w.node.url(&format!("/v/b.mp4?jwt={}", w.token));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.bytes().await.expect("body"))
        }));
    }
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert_eq!(status, 200);
        assert!(got[..] == body[..], "a client got different bytes");
    }
    // One probe GET shared by the fifty, and one GET of the whole object.
    assert_eq!(w.origin_requests(), (2, 0), "{:#?}", w.tap.heads());
    assert_eq!(w.probes(), 1, "{:#?}", w.tap.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_dying_mid_body_is_an_error_and_nothing_is_kept() {
    let body = bytes(2 * 1024 * 1024, 3);
    let w = world(&[("v/c.mp4", &body)], "").await;
    w.tap.set_mode(Mode::CutAfter(300 * 1024));
    let url = w.node.url(&format!("/v/c.mp4?jwt={}", w.token));
    // Depending on whether the failure comes before or after the node has
    // sent its response header, the client sees a 502 or a body cut short
    // (a transport error): never a 200 whose body looks complete.
    let outcome = match reqwest::get(&url).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.bytes().await.map(|b| (status, b.len()))
        }
        Err(e) => Err(e),
    };
    assert!(
        !matches!(outcome, Ok((200, _))),
        "a truncated body looked complete: {outcome:?}"
    );
    w.tap.set_mode(Mode::Forward);
    let (status, headers, got) = w.get("/v/c.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(
        header(&headers, "x-cache"),
        Some("MISS"),
        "the failed fill was kept"
    );
    // The probe, the cut GET, and the retry: the object's record (from the
    // probe) spares the retry another probe.
    assert_eq!(w.origin_requests(), (3, 0));
    assert_eq!(w.probes(), 1);
    let m = w.node.metrics().await;
    assert!(metric(&m, "cdn_node_cache_aborted_fills_total", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_fill_never_leaves_a_truncated_object() {
    let body = bytes(4 * 1024 * 1024, 4);
    let mut w = world(&[("v/d.mp4", &body)], "").await;
    w.tap.set_mode(Mode::HoldAfter(1024 * 1024));
    let url = w.node.url(&format!("/v/d.mp4?jwt={}", w.token));
    let client = tokio::spawn(async move {
        if let Ok(resp) = reqwest::get(url).await {
            let _ = resp.bytes().await;
        }
    });
    eventually("the fill to be under way", Duration::from_secs(10), || {
        let passed = w.tap.response_bytes();
        async move { (passed >= 1024 * 1024).then_some(()) }
    })
    .await;
    w.restart().await;
    client.abort();
    w.tap.set_mode(Mode::Forward);
    let (status, headers, got) = w.get("/v/d.mp4").await;
    assert_eq!(status, 200);
    assert!(
        got == body,
        "after a crash the node served {} bytes",
        got.len()
    );
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    let (_, headers, got) = w.get("/v/d.mp4").await;
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_hits() {
    let a = bytes(500_000, 5);
    let b = bytes(70_000, 6);
    let mut w = world(&[("v/e.mp4", &a), ("v/f.mp4", &b)], "").await;
    assert_eq!(w.get("/v/e.mp4").await.0, 200);
    assert_eq!(w.get("/v/f.mp4").await.0, 200);
    // Both are over 64 KiB: a probe GET and a GET each.
    assert_eq!(w.origin_requests(), (4, 0));
    w.restart().await;
    for (path, body) in [("/v/e.mp4", &a), ("/v/f.mp4", &b)] {
        let (status, headers, got) = w.get(path).await;
        assert_eq!(status, 200);
        assert!(got == *body);
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{path}");
    }
    assert_eq!(w.origin_requests(), (4, 0), "a restart lost the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_store_under_max_size() {
    let objects: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("v/{i}.mp4"), bytes(200_000, 10 + i)))
        .collect();
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let max = 1_000_000u64;
    let w = world(
        &refs,
        &format!("  max_size: {max}\n  max_object_size: 500000\n"),
    )
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
    let on_disk: u64 = walk(w.cache_dir.path());
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
async fn purge_by_url_and_by_prefix() {
    let x = bytes(1000, 20);
    let w = world(
        &[
            ("courses/101/a.mp4", &x),
            ("courses/101/b.mp4", &x),
            ("courses/1011/c.mp4", &x),
            ("courses/202/d.mp4", &x),
        ],
        "",
    )
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
async fn refusals_and_origin_errors_are_never_cached() {
    let x = bytes(1000, 30);
    let w = world(&[("v/g.mp4", &x)], "  not_found_ttl_seconds: 60\n").await;
    // 401 is not cached: the next good request still goes to the origin.
    assert_eq!(raw(w.node.http, "GET", "/v/g.mp4", &[]).await.0, 401);
    assert_eq!(w.tap.requests(), 0);
    // A 404 is kept for not_found_ttl_seconds: the probe GET finds
    // nothing, the ordinary GET answers and stores the 404.
    assert_eq!(w.get("/v/missing.mp4").await.0, 404);
    assert_eq!(w.get("/v/missing.mp4").await.0, 404);
    assert_eq!(w.origin_requests(), (2, 0));
    assert_eq!(w.probes(), 1);
    // A 5xx-like origin failure (origin silent) is not kept.
    w.tap.set_mode(Mode::CutAfter(0));
    assert_eq!(w.get("/v/g.mp4").await.0, 502);
    w.tap.set_mode(Mode::Forward);
    let (status, headers, got) = w.get("/v/g.mp4").await;
    assert_eq!(status, 200);
    assert!(got == x);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_room_on_disk_objects_are_served_uncached() {
    let body = bytes(600_000, 40);
    let small = bytes(1000, 41);
    // No filesystem here has 1000 TiB free: every fill is refused.
    let w = world(
        &[("v/h.mp4", &body), ("v/i.mp4", &small)],
        "  min_free_space: 1000TiB\n",
    )
    .await;
    for _ in 0..2 {
        let (status, headers, got) = w.get("/v/h.mp4").await;
        assert_eq!(status, 200);
        assert!(got == body);
        assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    }
    // Nothing is stored, not even the object's record: a probe GET each
    // time, before the GET.
    assert_eq!(w.origin_requests(), (4, 0));
    assert_eq!(w.probes(), 2);
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_refused_fills_total", &[]), 4.0);
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_max_object_size_are_served_uncached() {
    let big = bytes(300_000, 42);
    let w = world(&[("v/j.mp4", &big)], "  max_object_size: 100000\n").await;
    for _ in 0..2 {
        let (status, _, got) = w.get("/v/j.mp4").await;
        assert_eq!(status, 200);
        assert!(got == big);
    }
    // The record is kept (it is small): one probe GET, then a GET each time.
    assert_eq!(w.origin_requests(), (3, 0));
    assert_eq!(w.probes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_object_is_revalidated_with_a_conditional_request() {
    let body = bytes(50_000, 43);
    let w = world(
        &[("v/k.mp4", &body)],
        "  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 0\n",
    )
    .await;
    // The object stays unchanged at the origin: S3 answers a conditional GET
    // with 304, and only the stored metadata is refreshed.
    w.tap.set_mode(Mode::NotModified);
    let (status, headers, _) = w.get("/v/k.mp4").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    // The object is unchanged at the origin: S3 answers a conditional GET
    // with 304, and only the stored metadata is refreshed.
    w.tap.set_mode(Mode::NotModified);
    // Once the second of freshness has passed, the next request revalidates.
    let (status, got) = eventually(
        "the object to need revalidation",
        Duration::from_secs(10),
        || async {
            let (status, headers, got) = w.get("/v/k.mp4").await;
            (header(&headers, "x-cache") == Some("REVALIDATED")).then_some((status, got))
        },
    )
    .await;
    assert_eq!(status, 200);
    assert!(got == body);
    let heads: Vec<_> = w
        .tap
        .heads()
        .into_iter()
        .filter(|h| h.starts_with("GET "))
        .collect();
    // The probe GET brought the whole object; then the revalidation.
    assert_eq!(heads.len(), 2, "{heads:#?}");
    assert_eq!(w.origin_requests(), (2, 0));
    assert_eq!(w.probes(), 1);
    let conditional = heads[1].to_ascii_lowercase();
    assert!(
        conditional.contains("if-none-match:") || conditional.contains("if-modified-since:"),
        "the revalidation was not conditional:\n{}",
        heads[1]
    );
    let m = w.node.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_origin_requests_total",
            &[("status_class", "3xx")]
        ),
        1.0
    );
    // Fresh again for a second: a hit, no origin request.
    let (_, headers, got) = w.get("/v/k.mp4").await;
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(w.origin_requests(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_is_served_while_revalidating_and_when_the_origin_fails() {
    let body = bytes(20_000, 44);
    let w = world(
        &[("v/l.mp4", &body)],
        "  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 600\n  stale_if_error_seconds: 600\n",
    )
    .await;
    assert_eq!(w.get("/v/l.mp4").await.0, 200);
    // Past freshness, within stale-while-revalidate: served stale at once,
    // refreshed in the background.
    eventually("a stale answer", Duration::from_secs(10), || async {
        let (status, headers, got) = w.get("/v/l.mp4").await;
        (status == 200 && got == body && header(&headers, "x-cache") == Some("STALE")).then_some(())
    })
    .await;
    eventually(
        "the background revalidation",
        Duration::from_secs(10),
        || async { (w.tap.requests() >= 2).then_some(()) },
    )
    .await;
    // With the origin down, stale-if-error keeps serving the stored copy.
    w.tap.set_mode(Mode::CutAfter(0));
    eventually(
        "a stale answer with the origin down",
        Duration::from_secs(10),
        || async {
            let (status, headers, got) = w.get("/v/l.mp4").await;
            (status == 200 && got == body && header(&headers, "x-cache") != Some("HIT"))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_log_lines_never_carry_the_token() {
    let body = bytes(8 * 1024 * 1024, 50);
    let w = world(&[("v/m.mp4", &body)], "").await;
    assert_eq!(w.get("/v/m.mp4").await.0, 200);
    // A client that goes away mid-body makes Pingora log an error with its
    // request summary.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(w.node.http).await.unwrap();
    let req = format!("GET /v/m.mp4?jwt={} HTTP/1.1\r\nHost: x\r\n\r\n", w.token);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut first = [0u8; 1024];
    let _ = s.read(&mut first).await.unwrap();
    drop(s);
    let stderr = eventually("the error log line", Duration::from_secs(10), || {
        let text = w.node.stderr();
        async move { text.contains("/v/m.mp4").then_some(text) }
    })
    .await;
    assert!(
        !stderr.contains(&w.token),
        "token in the error log:\n{stderr}"
    );
    assert!(stderr.contains("jwt=REDACTED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_hot_objects_are_served_from_memory_and_never_outlive_their_object() {
    let first = bytes(3000, 40);
    let mut w = world(&[("v/small.mp4", &first)], "").await;
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
    assert_eq!(w.origin_requests(), (1, 0));
    // A range of a memory copy.
    let (status, _, got) = raw(
        w.node.http,
        "GET",
        &format!("/v/small.mp4?jwt={}", w.token),
        &[("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(status, 206);
    assert!(got == first[100..200]);

    // The object changes at the origin and is purged: the copy goes with it.
    let second = bytes(2000, 41);
    w.s3.put("v/small.mp4", &second);
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
    assert_eq!(w.origin_requests(), (2, 0));
    assert_eq!(w.probes(), 2);

    // Copies are memory only: after a restart the object is read from disk.
    w.restart().await;
    let (status, headers, got) = w.get("/v/small.mp4").await;
    assert_eq!((status, header(&headers, "x-cache")), (200, Some("HIT")));
    assert!(got == second);
    assert_eq!(w.origin_requests(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_small_object_costs_one_ranged_origin_get() {
    let body = bytes(3000, 60);
    let mut w = world(&[("v/p.mp4", &body)], "").await;
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "content-length"), Some("3000"));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
    assert!(header(&headers, "etag").is_some());
    assert!(header(&headers, "content-range").is_none());
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    // One origin request in all: the probe GET, which held the object.
    assert_eq!(w.origin_requests(), (1, 0), "{:#?}", w.tap.heads());
    assert_eq!(w.probes(), 1, "{:#?}", w.tap.heads());
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_origin_probe_requests_total", &[]), 1.0);
    assert_eq!(metric(&m, "cdn_node_origin_head_requests_total", &[]), 0.0);
    assert_eq!(
        metric(
            &m,
            "cdn_node_origin_requests_total",
            &[("status_class", "2xx")]
        ),
        1.0
    );
    // The object and its record.
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 2.0);
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "content-length"), Some("3000"));
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    // A range of it is a hit too.
    let (status, _, got) = raw(
        w.node.http,
        "GET",
        &format!("/v/p.mp4?jwt={}", w.token),
        &[("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(status, 206);
    assert!(got == body[10..20]);
    assert_eq!(w.origin_requests(), (1, 0));
    w.restart().await;
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(w.origin_requests(), (1, 0), "a restart lost the object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_cold_requests_for_a_small_object_make_one_origin_request() {
    let body = bytes(20_000, 61);
    let w = world(&[("v/q.mp4", &body)], "").await;
    // The probe's answer is held until every client is connected.
    w.tap.set_mode(Mode::HoldAfter(0));
    let url = w.node.url(&format!("/v/q.mp4?jwt={}", w.token));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.expect("request");
            let status = resp.status().as_u16();
            let len = resp.content_length();
            (status, len, resp.bytes().await.expect("body"))
        }));
    }
    eventually(
        "every client connected and the probe sent",
        Duration::from_secs(10),
        || async {
            let m = w.node.metrics().await;
            let open = metric(&m, "cdn_node_connections_open", &[]);
            (open >= 50.0 && w.tap.requests() >= 1).then_some(())
        },
    )
    .await;
    w.tap.set_mode(Mode::Forward);
    for t in tasks {
        let (status, len, got) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, Some(body.len() as u64));
        assert!(got[..] == body[..], "a client got different bytes");
    }
    assert_eq!(w.origin_requests(), (1, 0), "{:#?}", w.tap.heads());
    assert_eq!(w.probes(), 1, "{:#?}", w.tap.heads());
    let (_, headers, got) = w.get("/v/q.mp4").await;
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(w.origin_requests(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_around_the_probe_length_empty_and_missing_ones() {
    const P: usize = 64 * 1024;
    let exact = bytes(P, 62);
    let over = bytes(P + 1, 63);
    let w = world(
        &[
            ("v/exact.mp4", &exact),
            ("v/over.mp4", &over),
            ("v/empty.mp4", &[]),
        ],
        "",
    )
    .await;
    // (path, status, body, origin GETs of the cold request)
    let cases: [(&str, u16, &[u8], usize); 4] = [
        // Whole in the probe's answer.
        ("/v/exact.mp4", 200, &exact, 1),
        // One byte more: the probe learns it, the ordinary GET fetches it.
        ("/v/over.mp4", 200, &over, 2),
        // No byte to probe: the ordinary GET answers.
        ("/v/empty.mp4", 200, &[], 2),
        // Nothing there: the ordinary GET answers 404.
        ("/v/missing.mp4", 404, b"not found\n", 2),
    ];
    for (path, status, body, gets) in cases {
        let before = w.origin_requests().0;
        let (got_status, headers, got) = w.get(path).await;
        assert_eq!(got_status, status, "{path}");
        assert!(got == body, "{path}: {} bytes", got.len());
        if status == 200 {
            assert_eq!(
                header(&headers, "content-length"),
                Some(&*body.len().to_string()),
                "{path}"
            );
            assert_eq!(header(&headers, "x-cache"), Some("MISS"), "{path}");
        }
        assert_eq!(
            w.origin_requests(),
            (before + gets, 0),
            "{path}: {:#?}",
            w.tap.heads()
        );
        // Stored: the next one is a hit.
        let (got_status, headers, got) = w.get(path).await;
        assert_eq!(got_status, status, "{path}");
        assert!(got == body, "{path}");
        if status == 200 {
            assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{path}");
        }
        assert_eq!(w.origin_requests(), (before + gets, 0), "{path}");
    }
    assert_eq!(w.probes(), 4, "{:#?}", w.tap.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_object_the_rules_keep_out_is_answered_from_the_probe_and_not_stored() {
    let body = bytes(3000, 64);
    let w = world(&[("v/nostore.mp4", &body)], "").await;
    w.s3.set_cache_control("v/nostore.mp4", "no-store");
    for n in 1..=2 {
        let (status, headers, got) = w.get("/v/nostore.mp4").await;
        assert_eq!(status, 200);
        assert!(got == body);
        assert_eq!(header(&headers, "content-length"), Some("3000"));
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        assert_eq!(header(&headers, "x-cache"), Some("MISS"));
        // The probe each time, and nothing more.
        assert_eq!(w.origin_requests(), (n, 0), "{:#?}", w.tap.heads());
        assert_eq!(w.probes(), n);
    }
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 0.0);
}

/// A fresh hit held in memory is answered without Pingora's cache phases:
/// the answer must be the one Pingora's hit path gives. A conditional GET
/// that does not match takes Pingora's path and answers the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hit_answers_as_the_ordinary_hit_path_does() {
    let object = bytes(1024, 42);
    let w = world(&[("v/hot.mp4", &object)], "").await;
    let target = format!("/v/hot.mp4?jwt={}", w.token);
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
    // Age may tick between the two answers; every other field is equal.
    let without_age = |h: common::http::Headers| -> common::http::Headers {
        h.into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("age"))
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
        assert_eq!(without_age(fast), without_age(ordinary), "{method}");
        assert_eq!(body, o_body, "{method}");
        let want: &[u8] = if method == "GET" { &object } else { b"" };
        assert!(body == want, "{method}: body");
    }
    let after = w.node.metrics().await;
    let hits = |m: &str| metric(m, "cdn_node_cache_lookups_total", &[("result", "hit")]);
    assert_eq!(hits(&after) - hits(&before), 12.0, "every hit counted");
    assert_eq!(memory_hits(&after) - memory_hits(&before), 12.0);
    assert_eq!(w.origin_requests(), (1, 0));
}
