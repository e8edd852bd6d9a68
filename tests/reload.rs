//! A configuration change through Pingora's graceful upgrade, under
//! continuous load: a second process started with `run -u` takes the
//! listening sockets over when the first gets SIGQUIT. No request fails, the
//! new configuration (a key added) is in force afterwards, and the disk
//! cache (the same folder) still answers HITs. A graceful stop answers every
//! connection it accepted, over HTTP and HTTPS.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::http::{get_status, header, try_raw};
use common::node::{Node, Options, cache_section};
use common::s3::S3;
use common::token::{good_claims, hs256, sign};
use common::{bytes, eventually, free_port, tools};
use jsonwebtoken::Algorithm;

const SECOND_SECRET: &str = "second-hmac-secret-that-is-long-enough-9876";

/// A node process, killed on drop.
struct Proc(Child);

impl Proc {
    fn start(conf: &Path, dir: &Path, name: &str, upgrade: bool) -> Proc {
        let out = std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap();
        let err = std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdn-node"));
        cmd.args(["run", "-c"]).arg(conf);
        if upgrade {
            cmd.arg("-u");
        }
        let child = cmd
            .env("AWS_ACCESS_KEY_ID", common::s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", common::s3::SECRET_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn cdn-node");
        Proc(child)
    }

    fn exited(&mut self) -> bool {
        self.0.try_wait().ok().flatten().is_some()
    }

    /// Sends the signal `name` (`QUIT`, `TERM`, ...).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let s3 = S3::start(&refs).await;
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    std::fs::write(dir.path().join("hmac.key"), common::node::HMAC_SECRET).unwrap();
    std::fs::write(dir.path().join("second.key"), SECOND_SECRET).unwrap();

    let mut opts = Options::new(s3.port);
    opts.cache = Some(cache_section(&cache_dir, ""));
    let (http, admin) = (free_port(), free_port());
    let grace = "  threads: 2\n  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 2\n";
    let yaml = |o: &Options| {
        Node::config_yaml(o, http, admin, dir.path()).replacen("  threads: 2\n", grace, 1)
    };
    let conf = dir.path().join("cdn-node.yaml");
    std::fs::write(&conf, yaml(&opts)).unwrap();
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], http));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));

    let mut old = Proc::start(&conf, dir.path(), "old", false);
    eventually(
        "the first process to be ready",
        Duration::from_secs(30),
        || async { (get_status(admin, "/readyz").await == Some(200)).then_some(()) },
    )
    .await;
    assert!(!old.exited(), "the first process exited (port taken?)");

    // Warm the cache: every object a HIT on its second request.
    let token = hs256(&good_claims("alice"));
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

    // The new configuration: a second key.
    opts.extra_keys =
        "    - kid: second\n      algorithm: HS256\n      secret_file: second.key\n".into();
    std::fs::write(&conf, yaml(&opts)).unwrap();
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

    // The hand-over, as deploy/systemd/cdn-node-reload does it.
    let sock = dir.path().join("upgrade.sock");
    let _ = std::fs::remove_file(&sock);
    let mut new = Proc::start(&conf, dir.path(), "new", true);
    eventually(
        "the new process to bind the upgrade socket",
        Duration::from_secs(20),
        || {
            let sock = sock.clone();
            async move { sock.exists().then_some(()) }
        },
    )
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
    eventually("the old process to exit", Duration::from_secs(30), || {
        let gone = old.exited();
        async move { gone.then_some(()) }
    })
    .await;
    assert!(!new.exited(), "the new process exited");
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

/// A node with a 3 s grace period before it stops, in front of an S3 that
/// holds `v/a.mp4`, with one plain connection kept alive after a request:
/// its closing tells when the stop has reached the connections.
struct Stopping {
    node: Proc,
    object: Vec<u8>,
    request: String,
    kept: tokio::net::TcpStream,
    http: std::net::SocketAddr,
    https: Option<u16>,
    admin: std::net::SocketAddr,
    cert: Option<std::path::PathBuf>,
    _s3: S3,
    _dir: tempfile::TempDir,
}

impl Stopping {
    async fn start(tls: bool) -> Stopping {
        use tokio::io::AsyncWriteExt;
        let object = bytes(1000, 7);
        let s3 = S3::start(&[("v/a.mp4", &object)]).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hmac.key"), common::node::HMAC_SECRET).unwrap();
        let mut opts = Options::new(s3.port);
        let cert = tls.then(|| {
            opts.https = Some(("tls.crt".into(), "tls.key".into()));
            common::tls::self_signed(dir.path(), "tls").0
        });
        let (http, admin) = (free_port(), free_port());
        let https = tls.then(free_port);
        let grace =
            "  threads: 2\n  grace_period_seconds: 3\n  graceful_shutdown_timeout_seconds: 1\n";
        let yaml = Node::config_yaml_with(&opts, http, https, admin, dir.path()).replacen(
            "  threads: 2\n",
            grace,
            1,
        );
        let conf = dir.path().join("cdn-node.yaml");
        std::fs::write(&conf, yaml).unwrap();
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], http));
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
        let node = Proc::start(&conf, dir.path(), "node", false);
        eventually("the node to be ready", Duration::from_secs(30), || async {
            (get_status(admin, "/readyz").await == Some(200)).then_some(())
        })
        .await;
        let request = format!(
            "GET /v/a.mp4?jwt={} HTTP/1.1\r\nHost: cdn\r\n\r\n",
            hs256(&good_claims("alice"))
        );
        let mut kept = tokio::net::TcpStream::connect(http).await.unwrap();
        kept.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut kept).await, Some((200, object.clone())));
        Stopping {
            node,
            object,
            request,
            kept,
            http,
            https,
            admin,
            cert,
            _s3: s3,
            _dir: dir,
        }
    }

    /// Waits until the node holds `n` connections (TLS ones count once
    /// their handshake is done).
    async fn connections_open(&self, n: f64) {
        let admin = self.admin;
        eventually(
            "the connections to be accepted",
            Duration::from_secs(10),
            || async move {
                let (_, _, text) = try_raw(admin, "GET", "/metrics", &[]).await.ok()?;
                let text = String::from_utf8_lossy(&text).into_owned();
                (common::http::metric(&text, "cdn_node_connections_open", &[]) == n).then_some(())
            },
        )
        .await;
    }

    /// SIGTERM, then waits until the stop has closed the idle kept-alive
    /// connection: from then on Pingora drops any connection still waiting
    /// for its request.
    async fn stop(&mut self) {
        self.node.signal("TERM");
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
        eventually("the node to exit", Duration::from_secs(20), || {
            let gone = self.node.exited();
            async move { gone.then_some(()) }
        })
        .await;
    }
}

/// A graceful stop closes idle kept-alive connections, but a connection the
/// node accepted before it stopped accepting gets its request answered,
/// even when the request comes after the stop began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_the_connections_it_accepted() {
    use tokio::io::AsyncWriteExt;
    let mut node = Stopping::start(false).await;
    let mut silent = tokio::net::TcpStream::connect(node.http).await.unwrap();
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
    let mut client = tokio::process::Command::new(tools::require("openssl"))
        .args(["s_client", "-quiet", "-verify_return_error"])
        .args(["-connect", &format!("127.0.0.1:{}", node.https.unwrap())])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(node.cert.as_ref().unwrap())
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
