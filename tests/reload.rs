//! A configuration change through Pingora's graceful upgrade, under
//! continuous load: a second process started with `run -u` takes the
//! listening sockets over when the first gets SIGQUIT. No request fails, the
//! new configuration (a key added) is in force afterwards, and the disk
//! cache (the same folder) still answers HITs. A graceful stop answers every
//! connection it accepted, over HTTP and HTTPS.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::http::{get_status, header, metric, try_raw};
use common::token::{good_claims, sign};
use common::world::World;
use common::{bytes, eventually, tools};
use jsonwebtoken::Algorithm;

const SECOND_SECRET: &str = "second-hmac-secret-that-is-long-enough-9876";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_upgrade_with_a_new_key_fails_no_request_and_keeps_the_cache() {
    let objects: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            (
                format!("courses/101/part-{i}.mp4"),
                bytes(64 * 1024 + i, i as u64),
            )
        })
        .collect();
    let mut w = World::builder()
        .objects(&objects)
        .cache("")
        .file("second.key", SECOND_SECRET)
        .configure(|o| {
            o.server_extra =
                "  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 2\n".into();
        })
        .start()
        .await;
    let (http, admin) = (w.node.http, w.node.admin);

    // Warm the cache: every object a HIT on its second request.
    let token = w.token.clone();
    let target = |i: usize| format!("/{}?jwt={token}", objects[i % objects.len()].0);
    for (i, (_, object)) in objects.iter().enumerate() {
        for want in ["miss", "hit"] {
            let (status, headers, body) = try_raw(http, "GET", &target(i), &[]).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(
                header(&headers, "x-cache").map(str::to_ascii_lowercase),
                Some(want.into())
            );
            assert!(body == *object);
        }
    }

    // Continuous load: 4 clients, a new connection per request, bounded in
    // count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, done, objects) = (stop.clone(), done.clone(), objects.clone());
        let token = token.clone();
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut failures = Vec::new();
            for n in 0..20_000usize {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let i = (n + c) % objects.len();
                let target = format!("/{}?jwt={token}", objects[i].0);
                match try_raw(http, "GET", &target, &[]).await {
                    Ok((200, _, body)) if body == objects[i].1 => {}
                    Ok((status, _, body)) => {
                        failures.push(format!("{status}, {} bytes", body.len()))
                    }
                    Err(e) => failures.push(e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    let wait_for = |n: usize| {
        let done = done.clone();
        async move {
            eventually(
                &format!("{n} requests done"),
                Duration::from_secs(60),
                || {
                    let done = done.clone();
                    async move { (done.load(Ordering::Relaxed) >= n).then_some(()) }
                },
            )
            .await
        }
    };
    wait_for(50).await;

    // A token of a second key, which the running process does not have.
    let second = sign(
        Algorithm::HS256,
        Some("second"),
        &good_claims("bob"),
        SECOND_SECRET.as_bytes(),
    );
    let second_target = format!("/{}?jwt={second}", objects[0].0);
    assert_eq!(
        try_raw(http, "GET", &second_target, &[]).await.unwrap().0,
        401
    );

    // The hand-over, as deploy/systemd/cdn-node-reload does it, to the new
    // configuration: the second key added.
    let mut old = w
        .upgrade(|o| {
            o.extra_keys =
                "    - kid: second\n      algorithm: HS256\n      secret_file: second.key\n".into();
        })
        .await;
    old.signal("QUIT");
    let at_signal = done.load(Ordering::Relaxed);

    eventually(
        "the new key to be accepted",
        Duration::from_secs(30),
        || {
            let t = second_target.clone();
            async move { (try_raw(http, "GET", &t, &[]).await.ok()?.0 == 200).then_some(()) }
        },
    )
    .await;
    old.exited(Duration::from_secs(30)).await;
    assert!(w.node.is_running(), "the new process exited");
    let at_exit = done.load(Ordering::Relaxed);
    wait_for(at_exit + 50).await;
    stop.store(true, Ordering::Relaxed);

    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    let total = done.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        at_exit > at_signal,
        "no request was served during the hand-over"
    );

    // The cache folder is shared: the new process answers HITs at once.
    for i in 0..objects.len() {
        let (status, headers, _) = try_raw(http, "GET", &target(i), &[]).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "x-cache").map(str::to_ascii_lowercase),
            Some("hit".into())
        );
    }
    assert_eq!(get_status(admin, "/readyz").await, Some(200));
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; `None` when the
/// connection ends first.
async fn read_response(conn: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<(u16, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status = head.get(9..12)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))?
                .trim()
                .parse()
                .ok()?;
            if got.len() >= end + 4 + len {
                return Some((status, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// `read_response` within 10 s, else a failure saying `what`.
async fn answer_within(
    conn: &mut (impl tokio::io::AsyncRead + Unpin),
    what: &str,
) -> Option<(u16, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(10), read_response(conn))
        .await
        .expect(what)
}

/// A node with a 3 s grace period before it stops (with an HTTPS listener
/// when `tls`), in front of an S3 that holds `v/a.mp4`, with one plain
/// connection kept alive after a request: its closing tells when the stop
/// has reached the connections.
struct Stopping {
    w: World,
    object: Vec<u8>,
    request: String,
    kept: tokio::net::TcpStream,
}

impl Stopping {
    async fn start(tls: bool) -> Stopping {
        use tokio::io::AsyncWriteExt;
        let object = bytes(1000, 7);
        let mut world = World::builder().object("v/a.mp4", &object).configure(|o| {
            o.server_extra =
                "  grace_period_seconds: 3\n  graceful_shutdown_timeout_seconds: 1\n".into();
        });
        if tls {
            world = world.tls();
        }
        let w = world.start().await;
        let request = format!("GET {} HTTP/1.1\r\nHost: cdn\r\n\r\n", w.target("/v/a.mp4"));
        let mut kept = tokio::net::TcpStream::connect(w.node.http).await.unwrap();
        kept.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut kept).await, Some((200, object.clone())));
        Stopping {
            w,
            object,
            request,
            kept,
        }
    }

    /// Waits until the node holds `n` connections (TLS ones count once
    /// their handshake is done).
    async fn connections_open(&self, n: f64) {
        let node = &self.w.node;
        eventually(
            "the connections to be accepted",
            Duration::from_secs(10),
            || async move {
                let text = node.try_metrics().await?;
                (metric(&text, "cdn_node_connections_open", &[]) == n).then_some(())
            },
        )
        .await;
    }

    /// SIGTERM, then waits until the stop has closed the idle kept-alive
    /// connection: from then on Pingora drops any connection still waiting
    /// for its request.
    async fn stop(&mut self) {
        self.w.node.signal("TERM");
        let closed = answer_within(&mut self.kept, "the idle connection was not closed").await;
        assert_eq!(closed, None);
    }

    /// Whether `conn` got the object, as an accepted connection must.
    async fn assert_answered(&self, conn: &mut (impl tokio::io::AsyncRead + Unpin), what: &str) {
        assert_eq!(
            answer_within(conn, "no answer").await,
            Some((200, self.object.clone())),
            "{what} was dropped unanswered"
        );
    }

    async fn exited(mut self) {
        self.w.node.exited(Duration::from_secs(20)).await;
    }
}

/// A graceful stop closes idle kept-alive connections, but a connection the
/// node accepted before it stopped accepting gets its request answered,
/// even when the request comes after the stop began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_the_connections_it_accepted() {
    use tokio::io::AsyncWriteExt;
    let mut node = Stopping::start(false).await;
    let mut silent = tokio::net::TcpStream::connect(node.w.node.http)
        .await
        .unwrap();
    node.connections_open(2.0).await;

    node.stop().await;
    silent.write_all(node.request.as_bytes()).await.unwrap();
    node.assert_answered(&mut silent, "an accepted connection")
        .await;
    node.exited().await;
}

/// The same over HTTPS: a TLS connection that finished its handshake before
/// the stop and sends its request after it is answered too. (A TLS stream
/// cannot be peeked: its first bytes are read before Pingora's HTTP code
/// sees the connection, and handed to it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_the_tls_connections_it_accepted() {
    use tokio::io::AsyncWriteExt;
    let mut node = Stopping::start(true).await;
    // A TLS client that sends what it is given on stdin, and nothing yet.
    let https = node.w.node.https.expect("an HTTPS listener");
    let mut client = tokio::process::Command::new(tools::require("openssl"))
        .args(["s_client", "-quiet", "-verify_return_error"])
        .args(["-connect", &https.to_string()])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(&node.w.tls().served.cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run openssl");
    node.connections_open(2.0).await;

    node.stop().await;
    // A client whose connection was dropped has exited: its stdin is gone,
    // and the answer below is missing.
    let mut stdin = client.stdin.take().unwrap();
    let _ = stdin.write_all(node.request.as_bytes()).await;
    let _ = stdin.flush().await;
    let mut stdout = client.stdout.take().unwrap();
    node.assert_answered(&mut stdout, "an accepted TLS connection")
        .await;
    drop(stdin);
    node.exited().await;
}
