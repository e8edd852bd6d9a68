//! HTTPS listeners through the real node and curl: HTTP/2 by ALPN, the
//! object byte-identical, plain HTTP still served, the certificate replaced
//! on disk and picked up on SIGHUP without a restart, and `check` catching a
//! key that does not match. Session resumption through `openssl s_client`:
//! a session ticket resumes, and resumes again.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{metric, raw};
use common::tls::Certs;
use common::world::World;
use common::{bytes, eventually, tools};

struct Curl {
    status: String,
    http_version: String,
    body: Vec<u8>,
    ok: bool,
    stderr: String,
}

/// `curl --http2` over HTTPS, trusting only `ca`.
fn curl(ca: &Path, url: &str, out_dir: &Path) -> Curl {
    let body_file = out_dir.join("curl.body");
    let _ = std::fs::remove_file(&body_file);
    let out = Command::new(tools::require("curl"))
        .args(["--silent", "--show-error", "--http2", "--max-time", "20"])
        .arg("--cacert")
        .arg(ca)
        .arg("--output")
        .arg(&body_file)
        .args(["--write-out", "%{http_code} %{http_version}"])
        .arg(url)
        .output()
        .expect("run curl");
    let written = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts = written.split_whitespace();
    Curl {
        status: parts.next().unwrap_or("").to_string(),
        http_version: parts.next().unwrap_or("").to_string(),
        body: std::fs::read(&body_file).unwrap_or_default(),
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

#[tokio::test]
async fn https_with_http2_and_a_certificate_reloaded_on_sighup() {
    let video = bytes(3 * 1024 * 1024 + 17, 7);
    let w = World::builder()
        .object("courses/101/lecture-01.mp4", &video)
        .tls()
        .start()
        .await;
    let node = &w.node;
    let certs = &w.tls().certs;
    let (cert_a, key_a) = (w.tls().served.cert.clone(), w.tls().served.key.clone());
    let b = certs.pair("b");
    let (cert_b, key_b) = (b.cert, b.key);
    let https = node.https.expect("https listener");
    let target = w.target("/courses/101/lecture-01.mp4");
    let url = format!("https://localhost:{}{target}", https.port());
    let url_ip = format!("https://127.0.0.1:{}{target}", https.port());

    // HTTP/2 by ALPN, the object byte-identical, by name and by address.
    for u in [&url, &url_ip] {
        let got = tokio::task::spawn_blocking({
            let (ca, u, dir) = (cert_a.clone(), u.clone(), certs.dir().to_path_buf());
            move || curl(&ca, &u, &dir)
        })
        .await
        .unwrap();
        assert!(got.ok, "curl failed: {}", got.stderr);
        assert_eq!(
            (got.status.as_str(), got.http_version.as_str()),
            ("200", "2")
        );
        assert!(got.body == video, "HTTPS body differs from the object");
    }
    // Plain HTTP stays available.
    let (status, _, body) = raw(node.http, "GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert!(body == video);

    // Renewal: the new pair replaces the files (key first, then the
    // certificate, as a renewal tool would), then SIGHUP.
    std::fs::copy(&key_b, node.dir.path().join("tls.key")).unwrap();
    std::fs::copy(&cert_b, node.dir.path().join("tls.crt")).unwrap();
    node.signal("HUP");
    let dir = certs.dir().to_path_buf();
    eventually(
        "the new certificate to be served",
        Duration::from_secs(20),
        || {
            let (ca, u, dir) = (cert_b.clone(), url.clone(), dir.clone());
            async move {
                let got = tokio::task::spawn_blocking(move || curl(&ca, &u, &dir))
                    .await
                    .ok()?;
                (got.ok && got.status == "200" && got.http_version == "2").then_some(())
            }
        },
    )
    .await;
    // The old certificate is no longer what the node presents.
    let old = tokio::task::spawn_blocking({
        let (ca, u, dir) = (cert_a.clone(), url.clone(), certs.dir().to_path_buf());
        move || curl(&ca, &u, &dir)
    })
    .await
    .unwrap();
    assert!(!old.ok, "the old certificate is still served");

    // A broken renewal (a key that does not match) keeps the last good pair.
    let errors = |text: &str| {
        metric(
            text,
            "cdn_node_tls_cert_reloads_total",
            &[("result", "error")],
        )
    };
    let before = errors(&node.metrics().await);
    std::fs::copy(&key_a, node.dir.path().join("tls.key")).unwrap();
    node.signal("HUP");
    eventually(
        "a failed reload to be counted",
        Duration::from_secs(20),
        || async { (errors(&node.metrics().await) > before).then_some(()) },
    )
    .await;
    let still = tokio::task::spawn_blocking({
        let (ca, u, dir) = (cert_b.clone(), url.clone(), certs.dir().to_path_buf());
        move || curl(&ca, &u, &dir)
    })
    .await
    .unwrap();
    assert!(still.ok && still.status == "200", "{}", still.stderr);
    assert!(
        node.stderr().contains("keeping the last good one"),
        "{}",
        node.stderr()
    );
}

#[test]
fn check_reports_a_key_that_does_not_match() {
    let certs = Certs::new();
    let (a, b) = (certs.pair("a"), certs.pair("b"));
    let out = World::builder()
        .configure(|o| {
            o.https = Some((a.cert.display().to_string(), b.key.display().to_string()));
        })
        .check();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("listeners.https[0].key_file: does not match the certificate"),
        "{text}"
    );
}

/// One `openssl s_client` connection to 127.0.0.1:`port` carrying an
/// HTTP/1.1 GET of `target` (`Connection: close`), offering the session in
/// `sess_in` if given and saving the tickets it receives to `sess_out`;
/// returns what it printed.
async fn s_client(port: u16, target: &str, sess_in: Option<&Path>, sess_out: &Path) -> String {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(tools::require("openssl"));
    command
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-alpn", "http/1.1", "-ign_eof"])
        .arg("-sess_out")
        .arg(sess_out);
    if let Some(file) = sess_in {
        command.arg("-sess_in").arg(file);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run openssl s_client");
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).await.unwrap();
    drop(stdin);
    // The node closes the connection after the answer; s_client then exits.
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("openssl s_client did not finish within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("HTTP/1.1 200"),
        "no 200 over TLS: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test]
async fn a_session_ticket_resumes_and_resumes_again() {
    let w = World::builder()
        .object("courses/101/intro.mp4", &bytes(1024, 3))
        .tls()
        .start()
        .await;
    let port = w.node.https.expect("https listener").port();
    let target = w.target("/courses/101/intro.mp4");
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.pem"), dir.path().join("second.pem"));

    let full = s_client(port, &target, None, &first).await;
    assert!(full.contains("New, TLSv1.3"), "{full}");
    assert!(first.exists(), "no session ticket received");

    let resumed = s_client(port, &target, Some(&first), &second).await;
    assert!(resumed.contains("Reused, TLSv1.3"), "{resumed}");
    // The same ticket once more: the server keeps nothing per ticket (a
    // session cache would have handed it out once), so it resumes again,
    // whichever worker thread the connection reaches.
    for _ in 0..3 {
        let again = s_client(port, &target, Some(&first), &second).await;
        assert!(again.contains("Reused, TLSv1.3"), "{again}");
    }
}

/// `curl` over HTTPS with new connections, trusting only `ca`: each of
/// `urls` in turn on one connection kept alive, over `protocol`
/// (`--http1.1` or `--http2`). Per URL: the status and how many
/// connections curl opened for it.
fn curl_kept(ca: &Path, protocol: &str, urls: &[&str]) -> Vec<(String, String)> {
    let mut curl = Command::new(tools::require("curl"));
    curl.args(["--silent", "--show-error", protocol, "--max-time", "20"])
        .arg("--cacert")
        .arg(ca)
        .args(["--write-out", "%{http_code} %{num_connects}\\n"]);
    for url in urls {
        curl.args(["--output", "/dev/null", url]);
    }
    let out = curl.output().expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (status, connects) = l.split_once(' ').unwrap_or((l, ""));
            (status.to_string(), connects.to_string())
        })
        .collect()
}

/// The node's two worker threads each accept on their own socket, and the
/// kernel picks the socket by the connection's addresses. A handshake held
/// open on one thread (a client that connected and sent nothing) makes it
/// the busier: a connection arriving there afterwards is handed to the
/// other thread before its handshake, and served there like any other,
/// over HTTP/1.1 kept alive and over HTTP/2. Every connection is counted
/// out of the connection table when it ends, moved or not.
#[tokio::test]
async fn a_connection_arriving_on_a_thread_busy_with_a_handshake_is_served_by_the_other() {
    let w = World::builder()
        .object("courses/101/intro.mp4", &bytes(4096, 5))
        .tls()
        .start()
        .await;
    let node = &w.node;
    let https = node.https.expect("https listener");
    let ca = w.tls().served.cert.clone();
    let url = format!(
        "https://localhost:{}{}",
        https.port(),
        w.target("/courses/101/intro.mp4")
    );
    let open = || async {
        let text = node.metrics().await;
        metric(&text, "cdn_node_connections_open", &[])
    };
    let moved = || async {
        let text = node.metrics().await;
        metric(&text, "cdn_node_tls_handshakes_moved_total", &[])
    };

    let stalled = tokio::net::TcpStream::connect(https).await.unwrap();
    eventually(
        "the silent connection to be admitted",
        Duration::from_secs(5),
        || async { (open().await == 1.0).then_some(()) },
    )
    .await;

    // Each connection reaches one of the two threads at random: over 24,
    // some reach the stalled one's thread after the other has joined.
    for round in 0..24 {
        let protocol = if round % 3 == 2 {
            "--http2"
        } else {
            "--http1.1"
        };
        let got = tokio::task::spawn_blocking({
            let (ca, url) = (ca.clone(), url.clone());
            move || curl_kept(&ca, protocol, &[&url, &url])
        })
        .await
        .unwrap();
        let statuses: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(statuses, ["200", "200"], "round {round} ({protocol})");
        // The second request rode the first one's connection.
        assert_eq!(got[1].1, "0", "round {round} ({protocol}): {got:?}");
    }
    assert!(
        moved().await >= 1.0,
        "no connection was moved off the busy thread"
    );
    // Moved or not, every finished connection left the table; the stalled
    // one is still in it.
    eventually(
        "the finished connections to be counted out",
        Duration::from_secs(10),
        || async { (open().await == 1.0).then_some(()) },
    )
    .await;
    drop(stalled);
    eventually(
        "the stalled connection to be counted out",
        Duration::from_secs(10),
        || async { (open().await == 0.0).then_some(()) },
    )
    .await;
    let text = node.metrics().await;
    assert_eq!(
        metric(
            &text,
            "cdn_node_tls_handshake_failures_total",
            &[("reason", "timeout")]
        ),
        0.0
    );
}
