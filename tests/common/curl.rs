//! Requests with curl over HTTPS and HTTP/2, as a browser makes them.

use std::path::Path;
use std::process::Command;

use super::http::{Headers, lasting};
use super::tools;

/// What curl got for one request.
pub struct Got {
    pub version: String,
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// One request with `curl --http2` over HTTPS, trusting only `ca`: HEAD
/// with `--head`, extra fields with `-H`.
pub fn curl(ca: &Path, dir: &Path, method: &str, url: &str, fields: &[(&str, &str)]) -> Got {
    let (head_file, body_file) = (dir.join("h2.head"), dir.join("h2.body"));
    let _ = std::fs::remove_file(&head_file);
    let _ = std::fs::remove_file(&body_file);
    let mut cmd = Command::new(tools::require("curl"));
    cmd.args(["--silent", "--show-error", "--http2", "--max-time", "20"])
        .arg("--cacert")
        .arg(ca)
        .arg("--dump-header")
        .arg(&head_file)
        .arg("--output")
        .arg(&body_file);
    if method == "HEAD" {
        cmd.arg("--head");
    }
    for (n, v) in fields {
        cmd.arg("-H").arg(format!("{n}: {v}"));
    }
    let out = cmd.arg(url).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head_file).expect("the answer's head");
    let mut lines = head.lines();
    let mut status_line = lines.next().expect("a status line").split_whitespace();
    let version = status_line.next().unwrap_or("").to_string();
    let status = status_line.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = std::fs::read(&body_file).unwrap_or_default();
    if method == "HEAD" {
        // `--head` writes the head to the output too (its `Date` may be
        // another second's): what follows it is the body.
        if let Some(rest) = body.strip_prefix(head.as_bytes()) {
            body = rest.to_vec();
        }
    }
    Got {
        version,
        status,
        headers,
        body,
    }
}

/// The same request asked twice: as it is (a plain stream, which the hit
/// lane may answer) and announcing a body (`content-length: 0`), which the
/// lane never takes and the proxy answers.
pub fn in_lane_and_by_proxy(
    ca: &Path,
    dir: &Path,
    method: &str,
    url: &str,
    fields: &[(&str, &str)],
) -> (Got, Got) {
    let in_lane = curl(ca, dir, method, url, fields);
    let mut with_body = fields.to_vec();
    with_body.push(("content-length", "0"));
    let by_proxy = curl(ca, dir, method, url, &with_body);
    (in_lane, by_proxy)
}

/// Asserts that the lane's answer to `case` is the proxy's: both over
/// HTTP/2, the same status, the same fields but `Date` and `Age`, the same
/// body.
pub fn assert_same_answer(case: &str, in_lane: &Got, by_proxy: &Got) {
    assert_eq!(
        (in_lane.version.as_str(), by_proxy.version.as_str()),
        ("HTTP/2", "HTTP/2"),
        "{case}"
    );
    assert_eq!(in_lane.status, by_proxy.status, "{case}");
    assert_eq!(
        lasting(in_lane.headers.clone()),
        lasting(by_proxy.headers.clone()),
        "{case}"
    );
    assert!(in_lane.body == by_proxy.body, "{case}: bodies differ");
}
