//! Filling the disk cache through the real node: a second request never
//! reaches the origin, one origin fetch for many concurrent clients, the
//! probe GET that learns an object and brings a small one whole, failed
//! fills never kept, crashes and restarts.

mod common;

use std::time::Duration;

use common::http::{header, metric, raw};
use common::tap::Mode;
use common::token::{good_claims, hs256};
use common::world::World;
use common::{bytes, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_never_reaches_the_origin() {
    let body = bytes(3 * 1024 * 1024 + 5, 1);
    let w = World::builder()
        .object("v/a.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
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
    // The probe GET of the first slice, which learnt the object and
    // brought it whole.
    assert_eq!(w.tap().origin_requests(), (1, 0));
    assert_eq!(w.tap().probes(), 1);
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
    w.stored(2.0).await;
    let m = w.node.metrics().await;
    assert!(metric(&m, "cdn_node_cache_stored_bytes", &[]) >= body.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_cold_requests_make_one_origin_fetch() {
    let body = bytes(4 * 1024 * 1024, 2);
    let w = World::builder()
        .object("v/b.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    let url = w.url("/v/b.mp4");
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
    // One probe GET shared by the fifty, which brought the object whole.
    assert_eq!(w.tap().origin_requests(), (1, 0), "{:#?}", w.tap().heads());
    assert_eq!(w.tap().probes(), 1, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_small_object_costs_one_ranged_origin_get() {
    let body = bytes(3000, 60);
    let mut w = World::builder()
        .object("v/p.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "content-length"), Some("3000"));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
    assert!(header(&headers, "etag").is_some());
    assert!(header(&headers, "content-range").is_none());
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    // One origin request in all: the probe GET, which held the object.
    assert_eq!(w.tap().origin_requests(), (1, 0), "{:#?}", w.tap().heads());
    assert_eq!(w.tap().probes(), 1, "{:#?}", w.tap().heads());
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
    w.stored(2.0).await;
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "content-length"), Some("3000"));
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    // A range of it is a hit too.
    let (status, _, got) = w
        .request("GET", "/v/p.mp4", &[("range", "bytes=10-19")])
        .await;
    assert_eq!(status, 206);
    assert!(got == body[10..20]);
    assert_eq!(w.tap().origin_requests(), (1, 0));
    w.restart_gracefully().await;
    let (status, headers, got) = w.get("/v/p.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(
        w.tap().origin_requests(),
        (1, 0),
        "a restart lost the object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_cold_requests_for_a_small_object_make_one_origin_request() {
    let body = bytes(20_000, 61);
    let w = World::builder()
        .object("v/q.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    // The probe's answer is held until every client is connected.
    w.tap().set_mode(Mode::HoldAfter(0));
    let url = w.url("/v/q.mp4");
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
            (open >= 50.0 && w.tap().requests() >= 1).then_some(())
        },
    )
    .await;
    w.tap().set_mode(Mode::Forward);
    for t in tasks {
        let (status, len, got) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, Some(body.len() as u64));
        assert!(got[..] == body[..], "a client got different bytes");
    }
    assert_eq!(w.tap().origin_requests(), (1, 0), "{:#?}", w.tap().heads());
    assert_eq!(w.tap().probes(), 1, "{:#?}", w.tap().heads());
    let (_, headers, got) = w.get("/v/q.mp4").await;
    assert!(got == body);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(w.tap().origin_requests(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_around_the_probe_length_empty_and_missing_ones() {
    // The probe asks for the first slice: 4 MiB by default.
    const P: usize = 4 * 1024 * 1024;
    let exact = bytes(P, 62);
    let over = bytes(P + 1, 63);
    let w = World::builder()
        .object("v/exact.mp4", &exact)
        .object("v/over.mp4", &over)
        .object("v/empty.mp4", &[])
        .tap()
        .cache("")
        .start()
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
        let before = w.tap().origin_requests().0;
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
            w.tap().origin_requests(),
            (before + gets, 0),
            "{path}: {:#?}",
            w.tap().heads()
        );
        // Stored: the next one is a hit.
        let (got_status, headers, got) = w.get(path).await;
        assert_eq!(got_status, status, "{path}");
        assert!(got == body, "{path}");
        if status == 200 {
            assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{path}");
        }
        assert_eq!(w.tap().origin_requests(), (before + gets, 0), "{path}");
    }
    assert_eq!(w.tap().probes(), 4, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_dying_mid_body_is_an_error_and_nothing_is_kept() {
    let body = bytes(2 * 1024 * 1024, 3);
    let w = World::builder()
        .object("v/c.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    w.tap().set_mode(Mode::CutAfter(300 * 1024));
    let url = w.url("/v/c.mp4");
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
    w.tap().set_mode(Mode::Forward);
    let (status, headers, got) = w.get("/v/c.mp4").await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(
        header(&headers, "x-cache"),
        Some("MISS"),
        "the failed fill was kept"
    );
    // The probe, cut mid-body, and the retry: the object's record (from the
    // probe) spares the retry another probe.
    assert_eq!(w.tap().origin_requests(), (2, 0), "{:#?}", w.tap().heads());
    assert_eq!(w.tap().probes(), 1);
    let m = w.node.metrics().await;
    assert!(metric(&m, "cdn_node_cache_aborted_fills_total", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_fill_never_leaves_a_truncated_object() {
    let body = bytes(4 * 1024 * 1024, 4);
    let mut w = World::builder()
        .object("v/d.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
    w.tap().set_mode(Mode::HoldAfter(1024 * 1024));
    let url = w.url("/v/d.mp4");
    let client = tokio::spawn(async move {
        if let Ok(resp) = reqwest::get(url).await {
            let _ = resp.bytes().await;
        }
    });
    eventually("the fill to be under way", Duration::from_secs(10), || {
        let passed = w.tap().response_bytes();
        async move { (passed >= 1024 * 1024).then_some(()) }
    })
    .await;
    w.restart().await;
    client.abort();
    w.tap().set_mode(Mode::Forward);
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
    let mut w = World::builder()
        .object("v/e.mp4", &a)
        .object("v/f.mp4", &b)
        .tap()
        .cache("")
        .start()
        .await;
    assert_eq!(w.get("/v/e.mp4").await.0, 200);
    assert_eq!(w.get("/v/f.mp4").await.0, 200);
    // Both come whole in the probe GET of their first slice.
    assert_eq!(w.tap().origin_requests(), (2, 0));
    // Each object and its record, committed before the node is killed.
    w.stored(4.0).await;
    w.restart().await;
    for (path, body) in [("/v/e.mp4", &a), ("/v/f.mp4", &b)] {
        let (status, headers, got) = w.get(path).await;
        assert_eq!(status, 200);
        assert!(got == *body);
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{path}");
    }
    assert_eq!(
        w.tap().origin_requests(),
        (2, 0),
        "a restart lost the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_log_lines_never_carry_the_token() {
    let body = bytes(8 * 1024 * 1024, 50);
    let w = World::builder()
        .object("v/m.mp4", &body)
        .tap()
        .cache("")
        .start()
        .await;
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
