//! The node before a plain HTTP origin (`origin.kind: http`, its shipped
//! defaults), measured with an independent HTTP cache conformance suite:
//! http-cache-tests, whose own server is the origin and whose client asks
//! through the node. Every test the suite calls required must pass, but
//! the few listed in [`KNOWN`] with the reason the node differs.
//!
//! The suite's client also stores each test's answers on its server and
//! reads them back (`PUT /config/...`, `GET /state/...`) through the same
//! base URL: a small router in front of the node sends those two to the
//! server, so that they neither depend on nor disturb what the node keeps,
//! and everything else, whatever its method, to the node.
//! `deploy/setup.sh conformance` installs Node.js and the suite.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::world::World;
use common::{eventually, free_port, tools};

/// The version deploy/setup.sh installs.
const SUITE_VERSION: &str = "0.4.5";

/// Required tests the node may fail, and why.
const KNOWN: &[(&str, &str)] = &[
    (
        "other-date-update",
        "Pingora writes its own Date on every answer",
    ),
    (
        "headers-store-Transfer-Encoding",
        "the origin frames its answer with a transfer coding nobody knows: \
         the node reads it to the end of the connection (RFC 9112 6.3), \
         which never comes, and stores nothing",
    ),
    (
        "age-parse-prefix",
        "`Age: 0,7200` is no delta-seconds (RFC 9111 5.1): the node takes an \
         Age it cannot read as stale, as the suite's other eleven Age tests \
         ask (`0, 0` and two lines of `0` among them), and this one alone \
         wants the first number",
    ),
    (
        "stale-close-must-revalidate",
        "the node answers 502 and serves nothing stale, as it must; the \
         suite counts any answer its server did not write as from cache",
    ),
    ("stale-close-no-cache", "as stale-close-must-revalidate"),
    (
        "stale-close-proxy-revalidate",
        "as stale-close-must-revalidate",
    ),
    ("stale-close-s-maxage=2", "as stale-close-must-revalidate"),
];

/// Fewer passing tests than this (optional ones included) is a regression
/// the required ones alone may not show.
const MIN_PASSING: usize = 233;

/// The suite's folder, as deploy/setup.sh installs it.
fn suite_dir() -> Option<PathBuf> {
    let tools = std::env::var_os("CDN_NODE_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/cdn-node"))
        })?;
    let dir = tools
        .join(format!("http-cache-tests-{SUITE_VERSION}"))
        .join("node_modules/http-cache-tests");
    dir.join("cli.mjs").is_file().then_some(dir)
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads one request (head and `Content-Length` body) from `client`,
/// sends it on a connection of its own to the suite's server (`/config/`,
/// `/state/`) or the node (everything else), asking that connection to
/// close after the answer, and relays the answer until the target closes.
async fn route(mut client: TcpStream, server: u16, node: u16) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text.split(' ').nth(1).unwrap_or("/");
    let port = if target.starts_with("/config/") || target.starts_with("/state/") {
        server
    } else {
        node
    };
    let mut length = 0;
    let mut lines = vec![text.lines().next().unwrap_or_default().to_owned()];
    for line in text.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = line[name.len() + 1..].trim().parse().unwrap_or(0);
        }
        lines.push(line.to_owned());
    }
    lines.push("Connection: close".into());
    let mut body = vec![0; length];
    client.read_exact(&mut body).await?;
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    upstream
        .write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .await?;
    upstream.write_all(&body).await?;
    tokio::io::copy(&mut upstream, &mut client).await?;
    client.shutdown().await
}

/// Each test's kind (`required`, `optimal`, `check`) and the tests it
/// depends on, read from the suite itself.
fn definitions(suite: &Path) -> BTreeMap<String, (String, Vec<String>)> {
    let script = format!(
        "import tests from '{0}/tests/index.mjs'\n\
         import surrogate from '{0}/tests/surrogate-control.mjs'\n\
         tests.push(surrogate)\n\
         const out = {{}}\n\
         for (const s of tests) for (const t of s.tests) out[t.id] = [t.kind || 'required', t.depends_on || []]\n\
         console.log(JSON.stringify(out))",
        suite.display()
    );
    let out = Command::new(tools::require("node"))
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: BTreeMap<String, (String, Vec<String>)> =
        serde_json::from_slice(&out.stdout).expect("test definitions");
    assert!(all.len() > 200, "{} tests defined", all.len());
    all
}

/// The suite's verdict on one test, as its own report computes it: a test
/// whose dependency did not pass is not counted either way.
fn verdict(
    id: &str,
    defs: &BTreeMap<String, (String, Vec<String>)>,
    results: &serde_json::Map<String, Value>,
) -> &'static str {
    let (kind, depends) = &defs[id];
    let Some(result) = results.get(id) else {
        return "untested";
    };
    if depends
        .iter()
        .any(|d| !matches!(verdict(d, defs, results), "pass" | "yes"))
    {
        return "dependency failed";
    }
    let passed = result == &Value::Bool(true);
    if !passed && result.get(0).and_then(Value::as_str) == Some("Setup") {
        return "setup failed";
    }
    match (kind.as_str(), passed) {
        ("check", true) => "yes",
        ("check", false) => "no",
        (_, true) => "pass",
        ("optimal", false) => "optional failed",
        (_, false) => "fail",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_origin_is_cached_as_rfc_9111_says() {
    if !tools::present_or_skip("node", "HTTP cache conformance") {
        return;
    }
    let Some(suite) = suite_dir() else {
        assert!(
            !tools::under_ci(),
            "http-cache-tests {SUITE_VERSION} is not installed, and CI=true: run `bash deploy/setup.sh conformance` before the tests"
        );
        eprintln!(
            "skipped: http-cache-tests not installed (`bash deploy/setup.sh conformance` installs it)"
        );
        return;
    };
    let defs = definitions(&suite);

    let server_port = free_port();
    let state = tempfile::tempdir().expect("tempdir");
    let _server = Running(
        Command::new(tools::require("node"))
            .arg(suite.join("server/server.mjs"))
            .env("npm_config_port", server_port.to_string())
            .env("npm_config_protocol", "http")
            .env("npm_config_pidfile", state.path().join("server.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the suite's server"),
    );
    eventually(
        "the suite's server to listen",
        Duration::from_secs(20),
        || async {
            TcpStream::connect(("127.0.0.1", server_port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;

    // The shipped defaults (every query parameter passed on is one: the
    // test configuration writes the key) but a public path (the suite sends
    // no token) and a short origin read timeout (one test's origin never
    // ends its body).
    let w = World::builder()
        .origin(server_port)
        .cache("")
        .configure(|o| {
            o.http_origin = true;
            o.forward_query = vec!["*".into()];
            o.public_prefixes = vec!["/".into()];
            o.read_timeout_ms = 1_000;
        })
        .start()
        .await;

    let router = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let router_port = router.local_addr().expect("addr").port();
    let node_port = w.node.http.port();
    let routing = tokio::spawn(async move {
        while let Ok((client, _)) = router.accept().await {
            tokio::spawn(route(client, server_port, node_port));
        }
    });

    let out = tokio::task::spawn_blocking({
        let suite = suite.clone();
        move || {
            Command::new(tools::require("node"))
                .arg("--no-warnings")
                .arg(suite.join("cli.mjs"))
                .env("npm_config_base", format!("http://127.0.0.1:{router_port}"))
                .env("npm_package_config_id", "")
                .stdin(Stdio::null())
                .output()
                .expect("run the suite")
        }
    })
    .await
    .expect("suite");
    routing.abort();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "the suite's results: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });

    let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for id in defs.keys() {
        let v = verdict(id, &defs, &results);
        *by_verdict.entry(v).or_default() += 1;
        if v == "fail" {
            failed.insert(id.as_str());
        }
    }
    eprintln!("http-cache-tests {SUITE_VERSION}: {by_verdict:?}");
    let known: BTreeSet<&str> = KNOWN.iter().map(|(id, _)| *id).collect();
    let unexpected: Vec<String> = failed
        .difference(&known)
        .map(|id| format!("{id}: {}", results[*id]))
        .collect();
    assert!(
        unexpected.is_empty(),
        "required tests failed: {unexpected:#?}"
    );
    let passing_known: Vec<&&str> = known.difference(&failed).collect();
    eprintln!("listed in KNOWN, not failing this run: {passing_known:?}");
    let passing = by_verdict.get("pass").copied().unwrap_or(0);
    assert!(
        passing >= MIN_PASSING,
        "{passing} tests pass, fewer than {MIN_PASSING}: {by_verdict:?}"
    );
}
