//! Request head size limits and TLS handshakes through the real node: a
//! field, the request line or the whole head over its limit is answered
//! 414 or 431 as soon as the limit is passed (over HTTP/1.1, plain and TLS,
//! and HTTP/2), counted by reason; and a TLS handshake holds a connection
//! place, under the connection limits, until its deadline at most.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{Headers, header, metric, parse_answer, raw};
use common::world::World;
use common::{eventually, tools};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const OBJECT: &str = "courses/101/lecture-01.mp4";
const VIDEO: &[u8] = b"video bytes";
const FIELDS_TOO_LARGE: &str = "request header fields too large\n";
const URI_TOO_LONG: &str = "uri too long\n";
const REFUSALS: &str = "cdn_node_request_header_refusals_total";

/// The node in front of an S3 holding `OBJECT`, with a `limits:` section
/// of `limits` (none when empty), and an HTTPS listener when `tls`.
async fn world(limits: &str, tls: bool) -> World {
    world_of(World::builder(), limits, tls).await
}

/// With a cache: the HTTP/1 hit lane reads the heads (it answers those
/// memory holds).
async fn cached_world(limits: &str) -> World {
    world_of(World::builder().cache(""), limits, false).await
}

async fn world_of(builder: common::world::Builder, limits: &str, tls: bool) -> World {
    let mut builder = builder.object(OBJECT, VIDEO);
    if !limits.is_empty() {
        let section = format!("limits:\n{limits}");
        builder = builder.configure(|o| o.extra_yaml = section);
    }
    if tls {
        builder = builder.tls();
    }
    builder.start().await
}

/// The refusal counts by reason: uri_too_long, field_too_large,
/// header_too_large.
async fn refusals(w: &World) -> [f64; 3] {
    let text = w.metrics().await;
    ["uri_too_long", "field_too_large", "header_too_large"]
        .map(|reason| metric(&text, REFUSALS, &[("reason", reason)]))
}

/// `name: value` with a value of `len - name.len() - 2` bytes: a field line
/// of `len` bytes.
fn field(name: &str, len: usize) -> (String, String) {
    (name.to_string(), "v".repeat(len - name.len() - 2))
}

/// A GET of `OBJECT` with the world's token and `fields`, without
/// `Connection: close` (a kept-alive connection).
fn request(w: &World, method: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: cdn\r\n",
        w.target(&format!("/{OBJECT}"))
    );
    for (n, v) in fields {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Reads until the node closes the connection (EOF or reset), at most
/// `limit`; `None` if it is still open then.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(got)
}

/// Reads one answer with a `Content-Length` from a kept-alive connection.
async fn read_one(stream: &mut TcpStream) -> (u16, Headers, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, headers, _) = parse_answer(&got[..end + 4], true).unwrap();
            let len: usize = header(&headers, "content-length").unwrap().parse().unwrap();
            if got.len() >= end + 4 + len {
                return (status, headers, got[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before a whole answer");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Checks a refusal as read off the wire: status, the fixed body (none for
/// HEAD), and the fields that close the connection and keep it from caches.
fn assert_refused(answer: &[u8], status: u16, body: &str, head: bool) {
    let (got, headers, got_body) = parse_answer(answer, head)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(answer)));
    assert_eq!(got, status, "{}", String::from_utf8_lossy(answer));
    assert_eq!(got_body, if head { b"" } else { body.as_bytes() });
    assert_eq!(header(&headers, "connection"), Some("close"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn one_field_over_the_line_limit_is_refused_with_431_and_one_under_it_passes() {
    // The defaults: 8 KiB a line, 32 KiB in all.
    let w = world("", false).await;
    let fields = |len| [field("X-Big", len)];
    let (n, v) = field("X-Big", 7 * 1024);
    let (status, _, body) = w.request("GET", &format!("/{OBJECT}"), &[(&n, &v)]).await;
    assert_eq!((status, body.as_slice()), (200, VIDEO));
    assert_eq!(refusals(&w).await, [0.0, 0.0, 0.0]);

    for (method, len) in [("GET", 9 * 1024), ("HEAD", 9 * 1024), ("GET", 8 * 1024 + 1)] {
        let mut conn = TcpStream::connect(w.node.http).await.unwrap();
        conn.write_all(&request(&w, method, &fields(len)))
            .await
            .unwrap();
        let answer = read_until_closed(&mut conn, Duration::from_secs(10))
            .await
            .expect("the connection closed after the refusal");
        assert_refused(&answer, 431, FIELDS_TOO_LARGE, method == "HEAD");
    }
    // A field of exactly 8 KiB passes.
    let (n, v) = field("X-Big", 8 * 1024);
    let (status, _, _) = w.request("GET", &format!("/{OBJECT}"), &[(&n, &v)]).await;
    assert_eq!(status, 200);

    // A 200 KiB cookie, sent whole before the client reads: refused too.
    let cookie = "c".repeat(200 * 1024);
    let (status, headers, body) = w
        .request("GET", &format!("/{OBJECT}"), &[("Cookie", &cookie)])
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (431, FIELDS_TOO_LARGE.as_bytes())
    );
    assert_eq!(header(&headers, "connection"), Some("close"));

    assert_eq!(refusals(&w).await, [0.0, 4.0, 0.0]);
    assert_eq!(w.metric("cdn_node_header_timeouts_total", &[]).await, 0.0);
}

#[tokio::test]
async fn many_fields_over_the_head_limit_are_refused_with_431() {
    let w = world("", false).await;
    // 50 fields of 512 bytes (25 KiB): under the 32 KiB head limit.
    let some: Vec<_> = (0..50).map(|i| field(&format!("X-F{i}"), 512)).collect();
    let mut conn = TcpStream::connect(w.node.http).await.unwrap();
    conn.write_all(&request(&w, "GET", &some)).await.unwrap();
    let (status, _, body) = read_one(&mut conn).await;
    assert_eq!((status, body.as_slice()), (200, VIDEO));

    // 80 of them (40 KiB): over it.
    let many: Vec<_> = (0..80).map(|i| field(&format!("X-F{i}"), 512)).collect();
    let mut conn = TcpStream::connect(w.node.http).await.unwrap();
    conn.write_all(&request(&w, "GET", &many)).await.unwrap();
    let answer = read_until_closed(&mut conn, Duration::from_secs(10))
        .await
        .expect("closed after the refusal");
    assert_refused(&answer, 431, FIELDS_TOO_LARGE, false);
    assert_eq!(refusals(&w).await, [0.0, 0.0, 1.0]);
}

#[tokio::test]
async fn a_long_request_line_is_refused_with_414() {
    let w = world("", false).await;
    let target = w.target(&format!("/{OBJECT}?pad={}", "p".repeat(20 * 1024)));
    let (status, headers, body) = raw(w.node.http, "GET", &target, &[]).await;
    assert_eq!((status, body.as_slice()), (414, URI_TOO_LONG.as_bytes()));
    assert_eq!(header(&headers, "connection"), Some("close"));
    assert_eq!(refusals(&w).await, [1.0, 0.0, 0.0]);
}

/// The client sends 16 KiB of one field and then nothing, keeping the
/// connection open: the refusal comes anyway, long before the header
/// deadline, so the node did not wait for more of the head.
#[tokio::test]
async fn the_refusal_comes_before_the_client_has_sent_the_whole_head() {
    let w = world("  header_timeout_ms: 120000\n", false).await;
    let mut start = format!(
        "GET {} HTTP/1.1\r\nHost: cdn\r\nX-Big: ",
        w.target(&format!("/{OBJECT}"))
    )
    .into_bytes();
    start.extend(std::iter::repeat_n(b'v', 16 * 1024));
    let mut conn = TcpStream::connect(w.node.http).await.unwrap();
    conn.write_all(&start).await.unwrap();
    // The client stays silent and open; the answer is whole when the node
    // closes its side, which it does at once (it then waits for the client
    // to close).
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("no refusal while the head was incomplete");
    assert_refused(&answer, 431, FIELDS_TOO_LARGE, false);
    assert_eq!(refusals(&w).await, [0.0, 1.0, 0.0]);
    assert_eq!(w.metric("cdn_node_header_timeouts_total", &[]).await, 0.0);
}

#[tokio::test]
async fn on_a_kept_alive_connection_each_request_head_is_held_to_the_limits() {
    kept_alive_heads_are_held_to_the_limits(&world("", false).await).await;
}

/// The same with a cache: after the first (a miss), the heads are read
/// and the hits answered by the hit lane.
#[tokio::test]
async fn in_the_hit_lane_each_request_head_is_held_to_the_limits() {
    let w = cached_world("").await;
    // Until memory holds the object: then the lane answers it.
    common::eventually("a memory hit", Duration::from_secs(10), || async {
        assert_eq!(w.get(&format!("/{OBJECT}")).await.0, 200);
        let hits = w.metric("cdn_node_cache_memory_hits_total", &[]).await;
        (hits > 0.0).then_some(())
    })
    .await;
    let before = w.metric("cdn_node_lane_answers_total", &[]).await;
    kept_alive_heads_are_held_to_the_limits(&w).await;
    let answered = w.metric("cdn_node_lane_answers_total", &[]).await - before;
    assert_eq!(
        answered, 4.0,
        "the lane answered every request under the limits"
    );
}

async fn kept_alive_heads_are_held_to_the_limits(w: &World) {
    let mut conn = TcpStream::connect(w.node.http).await.unwrap();
    // Four requests of 6 KiB each: 24 KiB on the connection, every head
    // under its limits.
    for _ in 0..4 {
        conn.write_all(&request(w, "GET", &[field("X-Mid", 6 * 1024)]))
            .await
            .unwrap();
        let (status, headers, body) = read_one(&mut conn).await;
        assert_eq!((status, body.as_slice()), (200, VIDEO));
        assert_ne!(header(&headers, "connection"), Some("close"));
    }
    // Then one over the line limit, on the same connection.
    conn.write_all(&request(w, "GET", &[field("X-Big", 9 * 1024)]))
        .await
        .unwrap();
    let answer = read_until_closed(&mut conn, Duration::from_secs(10))
        .await
        .expect("closed after the refusal");
    assert_refused(&answer, 431, FIELDS_TOO_LARGE, false);
    assert_eq!(refusals(w).await, [0.0, 1.0, 0.0]);
}

#[tokio::test]
async fn smaller_limits_from_the_configuration() {
    let w = world(
        "  max_header_bytes: 4KiB\n  max_header_field_bytes: 2KiB\n",
        false,
    )
    .await;
    let cases: [(Vec<(String, String)>, u16); 3] = [
        (vec![field("X-A", 1500)], 200),
        (vec![field("X-A", 2049)], 431),
        (
            (0..3).map(|i| field(&format!("X-F{i}"), 1500)).collect(),
            431,
        ),
    ];
    for (fields, want) in cases {
        let mut conn = TcpStream::connect(w.node.http).await.unwrap();
        conn.write_all(&request(&w, "GET", &fields)).await.unwrap();
        let (status, _, _) = read_one(&mut conn).await;
        assert_eq!(status, want);
    }
    assert_eq!(refusals(&w).await, [0.0, 1.0, 1.0]);
}

struct Curl {
    status: String,
    http_version: String,
    body: Vec<u8>,
    stderr: String,
}

/// `curl` over HTTPS (`--http2` or `--http1.1`), trusting only `ca`, with
/// extra header fields.
fn curl(version: &str, ca: &Path, url: &str, fields: &[(String, String)], dir: &Path) -> Curl {
    let body_file = dir.join(format!("curl-{}.body", std::process::id()));
    let _ = std::fs::remove_file(&body_file);
    let mut cmd = Command::new(tools::require("curl"));
    cmd.args(["--silent", "--show-error", version, "--max-time", "20"])
        .arg("--cacert")
        .arg(ca)
        .arg("--output")
        .arg(&body_file)
        .args(["--write-out", "%{http_code} %{http_version}"]);
    for (n, v) in fields {
        cmd.arg("-H").arg(format!("{n}: {v}"));
    }
    let out = cmd.arg(url).output().expect("run curl");
    let written = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts = written.split_whitespace();
    Curl {
        status: parts.next().unwrap_or("").to_string(),
        http_version: parts.next().unwrap_or("").to_string(),
        body: std::fs::read(&body_file).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

#[tokio::test]
async fn over_https_http2_and_http1_requests_are_held_to_the_limits() {
    let w = world("", true).await;
    let https = w.node.https.expect("https listener");
    let ca = w.tls().served.cert.clone();
    let dir = w.tls().certs.dir().to_path_buf();
    let url = |path: &str| format!("https://localhost:{}{}", https.port(), w.target(path));
    let object = url(&format!("/{OBJECT}"));
    let fetch = |version: &'static str, url: String, fields: Vec<(String, String)>| {
        let (ca, dir) = (ca.clone(), dir.clone());
        tokio::task::spawn_blocking(move || curl(version, &ca, &url, &fields, &dir))
    };

    // HTTP/2: a 7 KiB field passes, a 9 KiB one is refused on its stream.
    let got = fetch("--http2", object.clone(), vec![field("x-big", 7 * 1024)])
        .await
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.http_version.as_str()),
        ("200", "2"),
        "{}",
        got.stderr
    );
    assert_eq!(got.body, VIDEO);
    let got = fetch("--http2", object.clone(), vec![field("x-big", 9 * 1024)])
        .await
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.http_version.as_str()),
        ("431", "2"),
        "{}",
        got.stderr
    );
    assert_eq!(got.body, FIELDS_TOO_LARGE.as_bytes());
    // A long path is refused with 414.
    let long = url(&format!("/{OBJECT}?pad={}", "p".repeat(20 * 1024)));
    let got = fetch("--http2", long, vec![]).await.unwrap();
    assert_eq!(
        (got.status.as_str(), got.http_version.as_str()),
        ("414", "2"),
        "{}",
        got.stderr
    );
    assert_eq!(got.body, URI_TOO_LONG.as_bytes());
    assert_eq!(refusals(&w).await, [1.0, 1.0, 0.0]);

    // A header list over SETTINGS_MAX_HEADER_LIST_SIZE (40 KiB of small
    // fields): the HTTP/2 layer answers 431 before the node sees it.
    let many: Vec<_> = (0..80).map(|i| field(&format!("x-f{i}"), 512)).collect();
    let got = fetch("--http2", object.clone(), many).await.unwrap();
    assert_eq!(
        (got.status.as_str(), got.http_version.as_str()),
        ("431", "2"),
        "{}",
        got.stderr
    );

    // HTTP/1.1 over TLS: measured on the connection as over plain HTTP.
    let got = fetch("--http1.1", object.clone(), vec![field("x-big", 9 * 1024)])
        .await
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.http_version.as_str()),
        ("431", "1.1"),
        "{}",
        got.stderr
    );
    assert_eq!(got.body, FIELDS_TOO_LARGE.as_bytes());
    let got = fetch("--http1.1", object, vec![field("x-big", 7 * 1024)])
        .await
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.body.as_slice()),
        ("200", VIDEO),
        "{}",
        got.stderr
    );
    assert_eq!(refusals(&w).await, [1.0, 2.0, 0.0]);
}

/// One sample of a metric labelled by `reason` only.
async fn by_reason(w: &World, name: &str, reason: &str) -> f64 {
    w.metric(name, &[("reason", reason)]).await
}

/// Connects from a chosen loopback address (127.0.0.0/8 is all local).
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn tls_handshakes_hold_a_connection_place_until_their_deadline() {
    let w = world(
        "  max_connections: 3\n  max_connections_per_client: 1\n  tls_handshake_timeout_ms: 5000\n",
        true,
    )
    .await;
    let https = w.node.https.expect("https listener");
    let w = &w;
    let open = || w.metric("cdn_node_connections_open", &[]);
    let refused = |reason| by_reason(w, "cdn_node_connections_refused_total", reason);
    let failed = |reason| by_reason(w, "cdn_node_tls_handshake_failures_total", reason);

    // The readiness probe's connection (from 127.0.0.1) may still be
    // counted for a moment: start from none, with clients of other addresses.
    eventually("no connection open", Duration::from_secs(10), || async {
        (open().await == 0.0).then_some(())
    })
    .await;

    // Two clients start a handshake (the first bytes of a TLS record) and
    // go silent. The deadline leaves time for the steps below to run while
    // they are still stuck, on a busy machine too.
    let started = Instant::now();
    let mut stuck = Vec::new();
    let stall = |conn: TcpStream| async {
        let mut conn = conn;
        conn.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        conn
    };
    for source in [[127, 0, 0, 11], [127, 0, 0, 12]] {
        stuck.push(stall(connect_from(source, https).await).await);
    }
    eventually("two connections open", Duration::from_secs(10), || async {
        (open().await == 2.0).then_some(())
    })
    .await;

    // Meanwhile they count against the per-client limit and, with a third,
    // against the total.
    let mut same_client = connect_from([127, 0, 0, 11], https).await;
    assert!(
        read_until_closed(&mut same_client, Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(refused("per_client").await, 1.0);
    stuck.push(stall(connect_from([127, 0, 0, 13], https).await).await);
    eventually(
        "three connections open",
        Duration::from_secs(10),
        || async { (open().await == 3.0).then_some(()) },
    )
    .await;
    let mut other_client = connect_from([127, 0, 0, 14], https).await;
    assert!(
        read_until_closed(&mut other_client, Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(refused("max_connections").await, 1.0);

    // At the deadline they are closed, and their places are free again.
    for conn in &mut stuck {
        let got = read_until_closed(conn, Duration::from_secs(10))
            .await
            .expect("a stuck handshake was never closed");
        assert!(got.is_empty());
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(4900),
        "closed after {after:?}"
    );
    assert_eq!(failed("timeout").await, 3.0);
    eventually("no connection open", Duration::from_secs(10), || async {
        (open().await == 0.0).then_some(())
    })
    .await;

    // Plain HTTP sent to the HTTPS listener fails its handshake at once.
    let mut plain = TcpStream::connect(https).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: cdn\r\n\r\n")
        .await
        .unwrap();
    read_until_closed(&mut plain, Duration::from_secs(5))
        .await
        .expect("closed");
    eventually(
        "the failed handshake counted",
        Duration::from_secs(10),
        || async { (failed("error").await == 1.0).then_some(()) },
    )
    .await;

    // A real client is served.
    let (ca, dir) = (
        w.tls().served.cert.clone(),
        w.tls().certs.dir().to_path_buf(),
    );
    let url = format!(
        "https://localhost:{}{}",
        https.port(),
        w.target(&format!("/{OBJECT}"))
    );
    let got = tokio::task::spawn_blocking(move || curl("--http2", &ca, &url, &[], &dir))
        .await
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.body.as_slice()),
        ("200", VIDEO),
        "{}",
        got.stderr
    );
}
