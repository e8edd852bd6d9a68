//! A graceful stop ends when the last request does: SIGTERM stops accepting,
//! lets the requests in flight finish (a cache fill a client is reading
//! included), writes what must be written at shutdown (the access log, the
//! eviction state), and the process exits, without sleeping out
//! `server.grace_period_seconds` (Pingora's default: 300 s). The grace period
//! still bounds the stop. The old process of a graceful upgrade ends the same
//! way once it has handed its sockets over.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::http::{header, try_raw};
use common::world::World;
use common::{bytes, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a stopping node may take to exit in these tests: far below any
/// grace period they configure, far above what an idle stop takes.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// Sends `GET target` on a new connection (kept alive) and reads the
/// response head; returns the connection, the status, the `Content-Length`
/// and the body bytes read along with the head.
async fn start_get(addr: std::net::SocketAddr, target: &str) -> (TcpStream, u16, usize, Vec<u8>) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: cdn\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status = head[9..12].parse().expect("status");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("content-length")
                .trim()
                .parse()
                .expect("length");
            return (conn, status, length, got[end + 4..].to_vec());
        }
        let n = conn.read(&mut buf).await.expect("read the head");
        assert!(n > 0, "the connection closed before the response head");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads from `conn` until `body` holds `length` bytes or the connection
/// ends (an error counts as the end).
async fn read_body(conn: &mut TcpStream, body: &mut Vec<u8>, length: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    while body.len() < length {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
}

/// A kept-alive connection with one request answered on it: the node
/// closes it when the stop reaches the connections.
async fn kept_alive(w: &World) -> TcpStream {
    let (mut conn, status, length, mut body) = start_get(w.node.http, &w.target("/v/small")).await;
    assert_eq!(status, 200);
    read_body(&mut conn, &mut body, length).await;
    assert_eq!(body.len(), length);
    conn
}

/// Waits until the node has closed `conn` (an idle kept-alive connection):
/// the stop has begun.
async fn closed(conn: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the idle kept-alive connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "unexpected bytes: {read:?}");
}

/// With Pingora's default grace period (300 s), an idle node exits within
/// seconds of SIGTERM, with status 0, having written its buffered access log
/// line and saved its eviction state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_exits_at_once_on_sigterm() {
    let mut w = World::builder()
        .object("v/small", &bytes(1000, 1))
        .cache("")
        .configure(|o| {
            o.extra_yaml = "log:\n  access_file: requests.log\n  access_flush_ms: 60000\n".into()
        })
        .start()
        .await;
    assert_eq!(w.get("/v/small").await.0, 200);
    let log = w.node.dir.path().join("requests.log");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "lines are buffered"
    );
    let sketch = w.cache_dir().join("eviction/tinylfu-sketch.bin");
    assert!(!sketch.exists(), "saved only every 300 s or at shutdown");

    w.node.signal("TERM");
    let status = w.node.exited(EXIT_DEADLINE).await;
    assert!(status.success(), "{status}: {}", w.node.stderr());
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    assert_eq!(w.node.access_log().len(), 1, "stdout lost the line");
    assert!(sketch.exists(), "the eviction state was not saved");
}

/// A client downloading a large object slowly (a cache fill it is reading)
/// when SIGTERM comes gets the whole object; the node exits right after, and
/// the fill was committed: a restarted node has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_download_in_flight_is_finished_then_the_node_exits() {
    // Larger than what the socket buffers and the node hold, so that most of
    // it is sent after the stop has begun.
    let object = bytes(32 << 20, 2);
    let mut w = World::builder()
        .object("v/large.mp4", &object)
        .object("v/small", &bytes(1000, 1))
        .cache("")
        .configure(|o| {
            o.server_extra = "  grace_period_seconds: 60\n".into();
        })
        .start()
        .await;
    let mut idle = kept_alive(&w).await;
    let (mut download, status, length, mut body) =
        start_get(w.node.http, &w.target("/v/large.mp4")).await;
    assert_eq!((status, length), (200, object.len()));

    // The client stalls until the stop has begun.
    w.node.signal("TERM");
    closed(&mut idle).await;
    let http = w.node.http;
    eventually(
        "new connections to be refused",
        EXIT_DEADLINE,
        || async move { TcpStream::connect(http).await.is_err().then_some(()) },
    )
    .await;
    assert!(w.node.is_running(), "exited with a download in flight");
    assert!(body.len() < length / 2, "too much was sent before the stop");
    read_body(&mut download, &mut body, length).await;
    assert_eq!(body.len(), object.len(), "the download was cut");
    assert!(body == object, "the body differs");

    let status = w.node.exited(EXIT_DEADLINE).await;
    assert!(status.success(), "{status}: {}", w.node.stderr());
    let lines = w.node.access_log();
    let line = lines
        .iter()
        .find(|l| {
            l["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v/large.mp4"))
        })
        .expect("the download's access log line");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], object.len() as u64);

    w.restart().await;
    let (status, headers, got) = w.get("/v/large.mp4").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-cache").map(str::to_ascii_lowercase),
        Some("hit".into())
    );
    assert!(got == object);
}

/// The grace period bounds the stop: a client that stops reading keeps the
/// node no longer than `grace_period_seconds` (then its download is cut).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_stop() {
    let object = bytes(32 << 20, 3);
    let mut w = World::builder()
        .object("v/large.mp4", &object)
        .configure(|o| {
            o.server_extra =
                "  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 1\n".into();
        })
        .start()
        .await;
    let (mut stalled, status, length, mut body) =
        start_get(w.node.http, &w.target("/v/large.mp4")).await;
    assert_eq!((status, length), (200, object.len()));

    w.node.signal("TERM");
    let status = w.node.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}: {}", w.node.stderr());
    read_body(&mut stalled, &mut body, length).await;
    assert!(body.len() < length, "the stalled download was not cut");
}

/// A graceful upgrade still hands over without a failed request, and the old
/// process, its requests done, exits without waiting out the grace period
/// (Pingora's default, 300 s): after the 5 s Pingora keeps serving beside the
/// new process, it has nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_process_of_an_upgrade_exits_once_its_requests_are_done() {
    let object = bytes(64 * 1024, 4);
    let mut w = World::builder()
        .object("v/a.mp4", &object)
        .cache("")
        .start()
        .await;
    let http = w.node.http;
    let target = w.target("/v/a.mp4");
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, served, object) = (stop.clone(), served.clone(), object.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match try_raw(http, "GET", &target, &[]).await {
                    Ok((200, _, body)) if body == object => {}
                    Ok((status, _, body)) => {
                        failures.push(format!("{status}, {} bytes", body.len()))
                    }
                    Err(e) => failures.push(e),
                }
                served.fetch_add(1, Ordering::Relaxed);
            }
            failures
        })
    };
    let mut old = w.upgrade(|_| {}).await;
    old.signal("QUIT");
    let status = old.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}: {}", old.stderr());
    assert!(w.node.is_running(), "the new process exited");
    let at_exit = served.load(Ordering::Relaxed);
    eventually(
        "requests to the new process",
        Duration::from_secs(10),
        || {
            let n = served.load(Ordering::Relaxed);
            async move { (n >= at_exit + 20).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let failures = client.await.unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

/// The container's documented stop timeout covers the stop's bound.
#[test]
fn the_container_stop_timeout_covers_the_grace_period() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    let conf: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/container/cdn-node.yaml")).expect("YAML");
    let bound = ["grace_period_seconds", "graceful_shutdown_timeout_seconds"]
        .iter()
        .map(|key| conf["server"][key].as_u64().expect(key))
        .sum::<u64>();
    for doc in ["deploy/container/Containerfile", "docs/operations.md"] {
        let text = read(doc);
        let timeouts: Vec<u64> = text
            .split("--stop-timeout ")
            .skip(1)
            .map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().expect("a number of seconds")
            })
            .collect();
        assert!(!timeouts.is_empty(), "{doc} gives no --stop-timeout");
        for t in timeouts {
            assert!(
                t > bound,
                "{doc}: --stop-timeout {t} is not above {bound} s"
            );
        }
    }
}
