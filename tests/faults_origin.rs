//! An origin that misbehaves, through the real node: a body shorter than
//! its `Content-Length`, a reset mid-body, silence before the header or
//! mid-body, and S3's `503 SlowDown`. The origin is the test's own
//! (`common::fault_origin`). Whatever the fault, the client never gets a
//! truncated body that looks whole, nothing truncated is stored (the next
//! request goes to the origin again), and the node never retries a failed
//! origin request itself.

mod common;

use std::time::Duration;

use common::conn::Conn;
use common::fault_origin::{Fault, FaultOrigin};
use common::http::{Headers, header, metric};
use common::world::World;
use common::{bytes, eventually};

const KEY: &str = "v/a.mp4";
const PATH: &str = "/v/a.mp4";

/// What a client got: the status and whole body, or the transport error
/// when the connection ended short of the promised length.
async fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let resp = reqwest::get(url).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, body.to_vec()))
}

/// The same node before `origin` as a plain HTTP origin (whole objects, on
/// Pingora's proxy path).
async fn plain_world(origin: &FaultOrigin, cache: &str, read_timeout_ms: u64) -> World {
    World::builder()
        .origin(origin.port)
        .cache(&format!("  slice_threshold: 0\n{cache}"))
        .configure(|o| {
            o.http_origin = true;
            o.read_timeout_ms = read_timeout_ms;
        })
        .start()
        .await
}

/// A node with a disk cache in front of `origin`.
async fn world(origin: &FaultOrigin, cache: &str, read_timeout_ms: u64) -> World {
    World::builder()
        .origin(origin.port)
        .cache(cache)
        .configure(|o| o.read_timeout_ms = read_timeout_ms)
        .start()
        .await
}

/// Starts `clients` GETs of [`PATH`] while `origin` holds its answers,
/// lets it answer once the first request reached it and every other one
/// waits for that fetch (`cdn_node_collapsed_requests_total{on}`), and
/// returns the clients.
async fn released_once_waiting(
    w: &World,
    origin: &FaultOrigin,
    clients: usize,
    on: &str,
) -> Vec<tokio::task::JoinHandle<Result<(u16, Vec<u8>), String>>> {
    let url = w.url(PATH);
    let started = (0..clients)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { fetch(&url).await })
        })
        .collect();
    let others = (clients - 1) as f64;
    eventually(
        "the first fetch under way and every other request waiting for it",
        Duration::from_secs(10),
        || async {
            let waiting = w
                .metric("cdn_node_collapsed_requests_total", &[("on", on)])
                .await;
            (waiting >= others && origin.requests() >= 1).then_some(())
        },
    )
    .await;
    origin.release();
    started
}

/// After a failed fill: the next request is a miss served whole from the
/// origin (nothing was kept), and the one after it a hit.
async fn nothing_was_kept(w: &World, origin: &FaultOrigin, body: &[u8]) {
    origin.set_fault(Fault::None);
    let before = origin.requests_for(KEY);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 200);
    assert!(got == body, "{} bytes", got.len());
    assert_eq!(
        header(&headers, "x-cache"),
        Some("MISS"),
        "a failed fill was kept"
    );
    assert!(origin.requests_for(KEY) > before, "not asked again");
    let asked = origin.requests_for(KEY);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(origin.requests_for(KEY), asked);
}

/// A fault after the response header: the client's answer is cut short,
/// and nothing is kept.
async fn cut_mid_body(fault: Fault, read_timeout_ms: u64, kind: &str) {
    let body = bytes(1024 * 1024, 1);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(&origin, "", read_timeout_ms).await;
    origin.set_fault(fault);
    // Depending on whether the failure comes before or after the node has
    // sent its response header, the client gets a 502 or an answer cut
    // short of its Content-Length: never a 200 that looks whole.
    let got = fetch(&w.url(PATH)).await;
    assert!(
        got.is_err() || matches!(&got, Ok((502, b)) if b == b"bad gateway\n"),
        "{fault:?}: the client got {:?}",
        got.map(|(s, b)| (s, b.len()))
    );
    // One origin request: the probe GET of the first slice, which holds
    // the whole object and is its fill.
    assert_eq!(origin.requests_for(KEY), 1, "{:#?}", origin.heads());
    // The record only.
    w.stored(1.0).await;
    let m = w.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_aborted_fills_total", &[]), 1.0);
    assert_eq!(
        metric(&m, "cdn_node_origin_errors_total", &[("kind", kind)]),
        1.0,
        "{m}"
    );
    nothing_was_kept(&w, &origin, &body).await;
    assert!(!w.node.stderr().contains("panicked"), "{}", w.node.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_is_cut_and_not_kept() {
    cut_mid_body(Fault::ShortBody(300 * 1024), 5_000, "reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_body_is_cut_and_not_kept() {
    cut_mid_body(Fault::ResetAfter(300 * 1024), 5_000, "reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_stalling_mid_body_is_cut_at_the_read_timeout_and_not_kept() {
    cut_mid_body(Fault::StallAfter(300 * 1024), 500, "timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_silent_before_its_header_is_a_504_and_nothing_is_kept() {
    let body = bytes(200_000, 2);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(&origin, "", 500).await;
    origin.set_fault(Fault::StallHeader);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 504);
    assert_eq!(got, b"gateway timeout\n");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    // The probe GET timed out: asking again would double the wait.
    assert_eq!(origin.requests_for(KEY), 1, "{:#?}", origin.heads());
    let m = w.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_origin_errors_total", &[("kind", "timeout")]),
        1.0
    );
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 0.0);
    nothing_was_kept(&w, &origin, &body).await;
}

/// The access log lines of requests for `PATH`, in order.
fn lines_for_path(w: &World) -> Vec<serde_json::Value> {
    w.node
        .access_log()
        .into_iter()
        .filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with(PATH)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_is_a_502_from_one_origin_request() {
    let body = bytes(200_000, 3);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(&origin, "", 5_000).await;
    origin.set_fault(Fault::SlowDown);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 502);
    assert_eq!(got, b"bad gateway\n");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert!(header(&headers, "x-amz-request-id").is_none());
    // Not retried: one origin request for one client request.
    assert_eq!(origin.requests_for(KEY), 1, "{:#?}", origin.heads());
    let m = w.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_origin_errors_total",
            &[("kind", "s3_server_error")]
        ),
        1.0
    );
    let log = eventually("the access log line", Duration::from_secs(10), || {
        let lines = lines_for_path(&w);
        async move { (!lines.is_empty()).then_some(lines) }
    })
    .await;
    assert_eq!(log[0]["status"], 502);
    assert_eq!(log[0]["origin_status"], 503);
    assert_eq!(log[0]["s3_code"], "SlowDown");
    nothing_was_kept(&w, &origin, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_requests_during_slow_down_share_one_origin_request() {
    let body = bytes(200_000, 4);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(&origin, "", 5_000).await;
    origin.set_fault(Fault::SlowDown);
    // The probe's answer is held until the nine others wait for it.
    origin.hold();
    for c in released_once_waiting(&w, &origin, 10, "object").await {
        let (status, got) = c.await.unwrap().expect("a whole answer");
        assert_eq!(status, 502);
        assert_eq!(got, b"bad gateway\n");
    }
    // The probe GET that learns the object, shared by the ten: its 503 is
    // everyone's answer.
    assert_eq!(origin.requests_for(KEY), 1, "{:#?}", origin.heads());
    let m = w.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_origin_errors_total",
            &[("kind", "s3_server_error")]
        ),
        10.0
    );
    assert_eq!(
        metric(&m, "cdn_node_collapsed_requests_total", &[("on", "object")]),
        9.0
    );
}

/// Without slices, concurrent misses for one key wait on the cache lock
/// for the first one's fill: one origin request, every client served
/// whole, the waits counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_requests_without_slices_wait_for_one_fill() {
    let body = bytes(200_000, 6);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(&origin, "  slice_threshold: 0\n", 5_000).await;
    origin.hold();
    for c in released_once_waiting(&w, &origin, 5, "fill").await {
        let (status, got) = c.await.unwrap().expect("a whole answer");
        assert_eq!(status, 200);
        assert!(got == body, "{} bytes", got.len());
    }
    assert_eq!(origin.requests_for(KEY), 1, "{:#?}", origin.heads());
    let waited = w
        .metric("cdn_node_collapsed_requests_total", &[("on", "fill")])
        .await;
    assert_eq!(waited, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_on_an_expired_object_serves_it_stale() {
    let body = bytes(200_000, 5);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(
        &origin,
        "  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 0\n  stale_if_error_seconds: 600\n",
        5_000,
    )
    .await;
    let (status, headers, _) = w.get(PATH).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    origin.set_fault(Fault::SlowDown);
    // Once the second of freshness is over, S3's refusal to revalidate
    // makes the node serve the stored copy.
    let (status, got) = eventually("a stale answer", Duration::from_secs(10), || async {
        let (status, headers, got) = w.get(PATH).await;
        (header(&headers, "x-cache") != Some("HIT")).then(|| {
            assert_eq!(header(&headers, "x-cache"), Some("STALE"));
            (status, got)
        })
    })
    .await;
    assert_eq!(status, 200);
    assert!(got == body);
    // Each stale answer costs one origin request, never more.
    let before = origin.requests_for(KEY);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("STALE"));
    assert_eq!(
        origin.requests_for(KEY),
        before + 1,
        "{:#?}",
        origin.heads()
    );
    // S3 back: the object is fetched again and fresh.
    origin.set_fault(Fault::None);
    let (status, headers, got) = w.get(PATH).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_ne!(header(&headers, "x-cache"), Some("STALE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_on_an_expired_object_without_stale_if_error_is_a_502() {
    let body = bytes(200_000, 6);
    let origin = FaultOrigin::start().await;
    origin.put(KEY, &body);
    let w = world(
        &origin,
        "  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 0\n  stale_if_error_seconds: 0\n",
        5_000,
    )
    .await;
    assert_eq!(w.get(PATH).await.0, 200);
    origin.set_fault(Fault::SlowDown);
    let (status, headers, got) =
        eventually("the object to expire", Duration::from_secs(10), || async {
            let (status, headers, got) = w.get(PATH).await;
            (header(&headers, "x-cache") != Some("HIT")).then_some((status, headers, got))
        })
        .await;
    assert_eq!(status, 502);
    assert_eq!(got, b"bad gateway\n");
    assert_eq!(header(&headers, "x-cache"), Some("EXPIRED"));
    let m = w.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_requests_total",
            &[("status_class", "5xx"), ("cache_status", "expired")]
        ),
        1.0
    );
}

/// The answer to a failed fetch (a 502, a 504, a stale copy) tells the
/// truth about the client's connection: `Connection: close` and the node
/// closes it, or kept alive and the next request on it is answered. A
/// client that takes a kept-alive answer at its word sends its next
/// request on the connection; were it closed under that request, the
/// request would be lost (a `POST` is never retried by a client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_to_a_failed_fetch_says_whether_the_connection_stays() {
    let stale = "  default_ttl_seconds: 1\n  stale_while_revalidate_seconds: 0\n  stale_if_error_seconds: 600\n";
    for plain in [false, true] {
        for (fault, cache, want) in [
            (Fault::CloseBeforeHeader, "", "502"),
            (Fault::StallHeader, "", "504"),
            (Fault::CloseBeforeHeader, stale, "STALE"),
            (Fault::SlowDown, stale, "STALE"),
        ] {
            let case = format!("plain origin: {plain}, {fault:?}, {want}");
            let body = bytes(20_000, 9);
            let origin = FaultOrigin::start().await;
            origin.put(KEY, &body);
            let w = match plain {
                false => world(&origin, cache, 500).await,
                true => plain_world(&origin, cache, 500).await,
            };
            let mut conn = Conn::open(w.node.http).await;
            let target = w.target(PATH);
            if want == "STALE" {
                let (status, ..) = conn.ask("GET", &target, &[]).await;
                assert_eq!(status, 200, "{case}");
            }
            origin.set_fault(fault);
            let (status, headers) = if want == "STALE" {
                // Once the second of freshness is over.
                let shared = tokio::sync::Mutex::new(conn);
                let answer = eventually("a stale answer", Duration::from_secs(10), || async {
                    let (status, headers, got) = shared.lock().await.ask("GET", &target, &[]).await;
                    if header(&headers, "x-cache") == Some("HIT") {
                        return None;
                    }
                    assert!(got == body, "{status} {headers:?}");
                    Some((status, headers))
                })
                .await;
                conn = shared.into_inner();
                answer
            } else {
                let (status, headers, _) = conn.ask("GET", &target, &[]).await;
                (status, headers)
            };
            match want {
                "STALE" => assert_eq!(header(&headers, "x-cache"), Some("STALE"), "{case}"),
                code => assert_eq!(status.to_string(), code, "{case}"),
            }
            origin.set_fault(Fault::None);
            next_on_the_same_connection(&w, &mut conn, &headers, &case).await;
        }
    }
}

/// After an answer with `headers`: the connection is closed if the answer
/// said so, else it answers the next request.
async fn next_on_the_same_connection(w: &World, conn: &mut Conn, headers: &Headers, case: &str) {
    let says_close = header(headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if says_close {
        assert!(conn.closed().await, "{case}: said close, kept open");
        return;
    }
    let (status, ..) = conn.ask("GET", &w.target(PATH), &[]).await;
    assert_eq!(
        status, 200,
        "{case}: the next request on the kept connection"
    );
}
