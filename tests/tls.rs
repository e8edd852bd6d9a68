//! HTTPS listeners through the real node and curl: HTTP/2 by ALPN, the
//! object byte-identical, plain HTTP still served, the certificate replaced
//! on disk and picked up on SIGHUP without a restart, and `check` catching a
//! key that does not match.

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
