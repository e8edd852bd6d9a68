//! Connection limits through the real node: a slowloris client is cut off
//! at the header deadline while others are served, and connections over
//! the per-client and total limits are closed at once and counted.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::eventually;
use common::http::metric;
use common::node::Node;
use common::token::{good_claims, hs256};
use common::world::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const OBJECT: &str = "courses/101/lecture-01.mp4";

/// The node with a `limits:` section of `limits`, in front of an S3 that
/// holds `OBJECT`.
async fn world(limits: &str) -> World {
    world_of(World::builder(), limits).await
}

async fn world_of(builder: common::world::Builder, limits: &str) -> World {
    builder
        .object(OBJECT, b"video bytes")
        .configure(|o| o.extra_yaml = format!("limits:\n{limits}"))
        .start()
        .await
}

/// The status of a GET of `OBJECT` with a good token.
async fn get(w: &World) -> u16 {
    w.get(&format!("/{OBJECT}")).await.0
}

async fn gauge_is(node: &Node, name: &str, want: f64) {
    eventually(
        &format!("{name} == {want}"),
        Duration::from_secs(10),
        || async move { (metric(&node.metrics().await, name, &[]) == want).then_some(()) },
    )
    .await
}

/// Connects from a chosen loopback address (127.0.0.0/8 is all local).
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// True when the node closes the connection (EOF or reset) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_header_deadline() {
    let w = world("  header_timeout_ms: 1000\n").await;
    let token = hs256(&good_claims("mallory"));
    let header = format!("GET /{OBJECT}?jwt={token} HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    let mut slow = TcpStream::connect(w.node.http).await.unwrap();
    let started = Instant::now();

    // One byte every 100 ms, never the empty line; at most 10 s of it.
    let trickle = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut bytes = header.into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', 100));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for b in bytes.iter().take(100) {
            tick.tick().await;
            if slow.write_all(&[*b]).await.is_err() {
                return (sent, started.elapsed());
            }
            sent += 1;
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
            {
                return (sent, started.elapsed());
            }
        }
        (sent, started.elapsed())
    });

    // Other clients are served normally meanwhile.
    let mut served = 0;
    while !trickle.is_finished() && served < 20 {
        assert_eq!(get(&w).await, 200);
        served += 1;
    }
    let (sent, cut_after) = trickle.await.unwrap();
    assert!(
        sent < 100,
        "the slow client was never cut off ({sent} bytes sent)"
    );
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(5),
        "cut off after {cut_after:?}"
    );
    assert!(served >= 1);
    assert_eq!(get(&w).await, 200);
    let text = w.metrics().await;
    assert_eq!(metric(&text, "cdn_node_header_timeouts_total", &[]), 1.0);
    gauge_is(&w.node, "cdn_node_connections_open", 0.0).await;
}

#[tokio::test]
async fn a_slow_second_request_on_a_kept_alive_connection_is_cut_off_too() {
    slow_second_request_is_cut_off(world("  header_timeout_ms: 800\n").await).await;
}

/// The same with a cache, where the hit lane reads the second head.
#[tokio::test]
async fn a_slow_second_request_read_by_the_hit_lane_is_cut_off_too() {
    let builder = World::builder().cache("");
    let w = world_of(builder, "  header_timeout_ms: 800\n").await;
    // Until memory holds the object: then the lane answers it.
    eventually("a memory hit", Duration::from_secs(10), || async {
        assert_eq!(get(&w).await, 200);
        let hits = w.metric("cdn_node_cache_memory_hits_total", &[]).await;
        (hits > 0.0).then_some(())
    })
    .await;
    let before = w.metric("cdn_node_lane_answers_total", &[]).await;
    let w = slow_second_request_is_cut_off(w).await;
    let answered = w.metric("cdn_node_lane_answers_total", &[]).await - before;
    assert_eq!(answered, 1.0, "the lane answered the first request");
}

async fn slow_second_request_is_cut_off(w: World) -> World {
    let token = hs256(&good_claims("mallory"));
    let mut conn = TcpStream::connect(w.node.http).await.unwrap();
    let request = format!("GET /{OBJECT}?jwt={token} HTTP/1.1\r\nHost: a\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    // Read the first response whole (the body is 11 bytes).
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"video bytes") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the first response");
        got.extend_from_slice(&buf[..n]);
    }
    // The next request's first bytes, then nothing more.
    let started = Instant::now();
    conn.write_all(b"GET /").await.unwrap();
    assert!(closed_within(&mut conn, Duration::from_secs(5)).await);
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(700),
        "cut off after {after:?}"
    );
    w
}

#[tokio::test]
async fn connections_over_the_limits_are_closed_and_counted() {
    let w = world(
        "  header_timeout_ms: 30000\n  max_connections: 3\n  max_connections_per_client: 2\n",
    )
    .await;
    gauge_is(&w.node, "cdn_node_connections_open", 0.0).await;

    let _a1 = connect_from([127, 0, 0, 1], w.node.http).await;
    let mut a2 = connect_from([127, 0, 0, 1], w.node.http).await;
    gauge_is(&w.node, "cdn_node_connections_open", 2.0).await;

    // A third connection from the same address: closed at once.
    let mut a3 = connect_from([127, 0, 0, 1], w.node.http).await;
    assert!(closed_within(&mut a3, Duration::from_secs(5)).await);

    // Another client still gets in, up to the total.
    let mut b1 = connect_from([127, 0, 0, 2], w.node.http).await;
    gauge_is(&w.node, "cdn_node_connections_open", 3.0).await;
    let mut c1 = connect_from([127, 0, 0, 3], w.node.http).await;
    assert!(closed_within(&mut c1, Duration::from_secs(5)).await);

    let text = w.metrics().await;
    let refused = |reason| {
        metric(
            &text,
            "cdn_node_connections_refused_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(refused("per_client"), 1.0);
    assert_eq!(refused("max_connections"), 1.0);

    // The admitted connections work, and a freed place is taken again.
    let token = hs256(&good_claims("alice"));
    let request =
        format!("GET /{OBJECT}?jwt={token} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    b1.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    b1.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    a2.shutdown().await.unwrap();
    drop(a2);
    gauge_is(&w.node, "cdn_node_connections_open", 1.0).await;
    assert_eq!(get(&w).await, 200);
}

/// A client that connects and sends nothing is closed at the header deadline
/// too, counted once.
#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_deadline() {
    let w = world("  header_timeout_ms: 1000\n").await;
    let mut silent = TcpStream::connect(w.node.http).await.unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "the silent connection was never closed"
    );
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    assert_eq!(get(&w).await, 200);
    let text = w.metrics().await;
    assert_eq!(metric(&text, "cdn_node_header_timeouts_total", &[]), 1.0);
    gauge_is(&w.node, "cdn_node_connections_open", 0.0).await;
}
