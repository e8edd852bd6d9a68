//! The admin listener's metrics: exact movements per request, and an
//! exposition that promtool accepts.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::http::{metric, raw};
use common::token::{good_claims, hs256};
use common::world::World;
use common::{bytes, tools, unix_now};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_the_expected_amounts() {
    let body = bytes(300_001, 11);
    let w = World::builder()
        .object("courses/7/a.mp4", &body)
        .tap()
        .start()
        .await;
    let node = &w.node;
    let token = hs256(&good_claims("alice"));
    let mut expired = good_claims("alice");
    expired["exp"] = json!(unix_now() - 3600);
    let expired = hs256(&expired);

    let before = node.metrics().await;
    for _ in 0..3 {
        let (status, _, got) = raw(
            node.http,
            "GET",
            &format!("/courses/7/a.mp4?jwt={token}"),
            &[],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(got.len(), body.len());
    }
    let (status, _, _) = raw(
        node.http,
        "GET",
        &format!("/courses/7/a.mp4?jwt={expired}"),
        &[],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = raw(
        node.http,
        "GET",
        &format!("/courses/7/missing.mp4?jwt={token}"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(node.http, "GET", "/a/../b", &[]).await;
    assert_eq!(status, 400);
    let after = node.metrics().await;

    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    let n = body.len() as f64;
    assert_eq!(
        delta(
            "cdn_node_requests_total",
            &[("status_class", "2xx"), ("cache_status", "bypass")]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "cdn_node_requests_total",
            &[("status_class", "4xx"), ("cache_status", "none")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "cdn_node_requests_total",
            &[("status_class", "4xx"), ("cache_status", "bypass")]
        ),
        1.0
    );
    assert_eq!(
        delta("cdn_node_auth_rejections_total", &[("reason", "expired")]),
        1.0
    );
    assert_eq!(
        delta(
            "cdn_node_request_rejections_total",
            &[("reason", "path_dot_segment")]
        ),
        1.0
    );
    assert_eq!(
        delta("cdn_node_origin_requests_total", &[("status_class", "2xx")]),
        3.0
    );
    assert_eq!(
        delta("cdn_node_origin_requests_total", &[("status_class", "4xx")]),
        1.0
    );
    // The 404's body is S3's error document; the client gets ours.
    assert!(delta("cdn_node_origin_body_bytes_total", &[]) >= 3.0 * n);
    assert!(delta("cdn_node_response_body_bytes_total", &[]) >= 3.0 * n);
    assert!(delta("cdn_node_response_body_bytes_total", &[]) < 3.0 * n + 200.0);
    assert_eq!(
        delta(
            "cdn_node_request_duration_seconds_count",
            &[("cache_status", "bypass")]
        ),
        4.0
    );
    assert_eq!(
        delta("cdn_node_origin_response_duration_seconds_count", &[]),
        4.0
    );
    assert_eq!(
        metric(
            &after,
            "cdn_node_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(w.tap().requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_passes_promtool() {
    let w = World::builder().object("a.mp4", b"abc").start().await;
    let node = &w.node;
    let token = hs256(&good_claims("alice"));
    // Touch every labelled family so that each has samples.
    raw(node.http, "GET", &format!("/a.mp4?jwt={token}"), &[]).await;
    raw(node.http, "GET", "/a.mp4", &[]).await;
    raw(node.http, "GET", "/a//b", &[]).await;
    raw(node.http, "GET", &format!("/none.mp4?jwt={token}"), &[]).await;
    let text = node.metrics().await;
    let mut child = Command::new(tools::require("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}\n{text}");
    assert!(report.trim().is_empty(), "promtool reported: {report}");
}
