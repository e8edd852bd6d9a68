//! What the disk cache keeps and for how long, through the real node:
//! refusals, origin errors and `no-store` objects never kept, a 404 kept
//! for `not_found_ttl_seconds`, expired objects revalidated with a
//! conditional request, stale answers while revalidating and while the
//! origin fails.

mod common;

use std::time::Duration;

use common::http::{header, metric, raw};
use common::tap::Mode;
use common::world::World;
use common::{bytes, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_origin_errors_are_never_cached() {
    let x = bytes(1000, 30);
    let w = World::builder()
        .object("v/g.mp4", &x)
        .tap()
        .cache("  not_found_ttl_seconds: 60\n")
        .start()
        .await;
    // 401 is not cached: the next good request still goes to the origin.
    assert_eq!(raw(w.node.http, "GET", "/v/g.mp4", &[]).await.0, 401);
    assert_eq!(w.tap().requests(), 0);
    // A 404 is kept for not_found_ttl_seconds: the probe GET finds
    // nothing, the ordinary GET answers and stores the 404.
    assert_eq!(w.get("/v/missing.mp4").await.0, 404);
    assert_eq!(w.get("/v/missing.mp4").await.0, 404);
    assert_eq!(w.tap().origin_requests(), (2, 0));
    assert_eq!(w.tap().probes(), 1);
    // A 5xx-like origin failure (origin silent) is not kept.
    w.tap().set_mode(Mode::CutAfter(0));
    assert_eq!(w.get("/v/g.mp4").await.0, 502);
    w.tap().set_mode(Mode::Forward);
    let (status, headers, got) = w.get("/v/g.mp4").await;
    assert_eq!(status, 200);
    assert!(got == x);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_object_the_rules_keep_out_is_answered_from_the_probe_and_not_stored() {
    let body = bytes(3000, 64);
    let w = World::builder()
        .object("v/nostore.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    w.s3().set_cache_control("v/nostore.mp4", "no-store");
    for n in 1..=2 {
        let (status, headers, got) = w.get("/v/nostore.mp4").await;
        assert_eq!(status, 200);
        assert!(got == body);
        assert_eq!(header(&headers, "content-length"), Some("3000"));
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        assert_eq!(header(&headers, "x-cache"), Some("MISS"));
        // The probe each time, and nothing more.
        assert_eq!(w.tap().origin_requests(), (n, 0), "{:#?}", w.tap().heads());
        assert_eq!(w.tap().probes(), n);
    }
    let m = w.node.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_object_is_revalidated_with_a_conditional_request() {
    let body = bytes(50_000, 43);
    let w = World::builder()
        .object("v/k.mp4", &body)
        .tap()
        .cache("  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 0\n")
        .start()
        .await;
    // The object stays unchanged at the origin: S3 answers a conditional GET
    // with 304, and only the stored metadata is refreshed.
    w.tap().set_mode(Mode::NotModified);
    let (status, headers, _) = w.get("/v/k.mp4").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    // The object is unchanged at the origin: S3 answers a conditional GET
    // with 304, and only the stored metadata is refreshed.
    w.tap().set_mode(Mode::NotModified);
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
        .tap()
        .heads()
        .into_iter()
        .filter(|h| h.starts_with("GET "))
        .collect();
    // The probe GET brought the whole object; then the revalidation.
    assert_eq!(heads.len(), 2, "{heads:#?}");
    assert_eq!(w.tap().origin_requests(), (2, 0));
    assert_eq!(w.tap().probes(), 1);
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
    assert_eq!(w.tap().origin_requests(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_is_served_while_revalidating_and_when_the_origin_fails() {
    let body = bytes(20_000, 44);
    let w = World::builder()
        .object("v/l.mp4", &body)
        .tap()
        .cache("  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 600\n  stale_if_error_seconds: 600\n")
        .start()
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
        || async { (w.tap().requests() >= 2).then_some(()) },
    )
    .await;
    // With the origin down, stale-if-error keeps serving the stored copy.
    w.tap().set_mode(Mode::CutAfter(0));
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
