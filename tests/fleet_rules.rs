//! Purges and revocations across a fleet on a real etcd: written through
//! one node's admin API or the `cdn-node purge` / `revoke` commands, applied
//! on every node within a second, and by a node started afterwards.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::etcd_fleet::{Fleet, PROPAGATION};
use common::http::header;
use common::token::{good_claims, hs256};
use common::{bytes, eventually, unix_now};
use serde_json::json;

const APPLIED: &str = "cdn_node_fleet_rules_applied_total";

/// Waits until every node counts `want` rules of `kind` applied, within
/// `limit` of `since`.
async fn applied_everywhere(f: &Fleet, kind: &str, want: f64, since: Instant, limit: Duration) {
    for i in 0..f.nodes.len() {
        let left = limit.saturating_sub(since.elapsed());
        eventually(
            &format!("node {i} to apply the {kind}"),
            left,
            || async move {
                let n = f.metric(i, APPLIED, &[("kind", kind)]).await?;
                (n >= want).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_one_node_is_a_miss_on_every_node_within_a_second() {
    let body = bytes(64 * 1024, 7);
    let f = Fleet::start(3, &[("v/a.mp4", &body), ("v/b.mp4", &body)]).await;
    for i in 0..3 {
        for path in ["/v/a.mp4", "/v/b.mp4"] {
            assert_eq!(f.get(i, path).await.0, 200);
            let (status, headers, _) = f.get(i, path).await;
            assert_eq!(status, 200);
            assert_eq!(header(&headers, "x-cache"), Some("HIT"), "node {i} {path}");
        }
    }

    let started = Instant::now();
    let (status, body) = f.admin(1, "POST", "/purge?path=/v/a.mp4").await;
    assert_eq!(status, 200, "{body}");
    applied_everywhere(&f, "purge", 1.0, started, PROPAGATION).await;
    for i in 0..3 {
        let (_, headers, got) = f.get(i, "/v/a.mp4").await;
        assert_eq!(header(&headers, "x-cache"), Some("MISS"), "node {i}");
        assert!(got == bytes(64 * 1024, 7));
        let (_, headers, _) = f.get(i, "/v/b.mp4").await;
        assert_eq!(
            header(&headers, "x-cache"),
            Some("HIT"),
            "node {i}: not purged"
        );
    }
    assert_eq!(f.etcd.keys("/cdn-node/test/rules/purge/").len(), 1);
}

/// A prefix purge written by `cdn-node purge` reaches the running nodes;
/// a node that was down meanwhile replays it from etcd when it comes back
/// on its disk; a node restarted after it keeps the copy it fetched since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_purge_from_the_command_line_is_replayed_by_a_node_that_was_down() {
    let body = bytes(4096, 3);
    let mut f = Fleet::start(3, &[("c/1/a.mp4", &body), ("c/2/a.mp4", &body)]).await;
    for i in 0..3 {
        for path in ["/c/1/a.mp4", "/c/2/a.mp4"] {
            f.get(i, path).await;
        }
    }
    // Stopped (its fills committed), not crashed.
    f.nodes[2].signal("TERM");
    f.nodes[2].exited(Duration::from_secs(30)).await;
    let conf = f.nodes[0].dir.path().join("cdn-node.yaml");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cdn-node"))
        .args(["purge", "--prefix", "/c/1/", "-c"])
        .arg(&conf)
        .output()
        .expect("run cdn-node purge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..2 {
        let left = PROPAGATION.saturating_sub(started.elapsed());
        let f = &f;
        eventually(
            &format!("node {i} to apply the purge"),
            left,
            || async move {
                let n = f.metric(i, APPLIED, &[("kind", "purge")]).await?;
                (n >= 1.0).then_some(())
            },
        )
        .await;
    }
    for i in 0..2 {
        let (_, headers, _) = f.get(i, "/c/1/a.mp4").await;
        assert_eq!(header(&headers, "x-cache"), Some("MISS"), "node {i}");
        let (_, headers, _) = f.get(i, "/c/2/a.mp4").await;
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "node {i}");
    }

    // Down during the purge: replayed at start-up.
    f.restart(2).await;
    let (_, headers, _) = f.get(2, "/c/1/a.mp4").await;
    assert_eq!(header(&headers, "x-cache"), Some("MISS"), "replayed");
    let (_, headers, _) = f.get(2, "/c/2/a.mp4").await;
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));

    // Fetched after the purge: replaying it spares the copy.
    f.restart(0).await;
    let (_, headers, _) = f.get(0, "/c/1/a.mp4").await;
    assert_eq!(
        header(&headers, "x-cache"),
        Some("HIT"),
        "fetched after the purge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_jti_is_refused_on_every_node_within_a_second_and_by_a_later_node() {
    let body = bytes(1024, 5);
    let mut f = Fleet::start(3, &[("v/a.mp4", &body)]).await;
    let mut claims = good_claims("alice");
    claims["jti"] = json!("lesson/1");
    claims["exp"] = json!(unix_now() + 600);
    let token = hs256(&claims);
    for i in 0..3 {
        assert_eq!(f.get_with(i, "/v/a.mp4", &token).await.0, 200);
    }

    let started = Instant::now();
    let target = format!("/auth/denylist/jti/lesson%2F1?exp={}", unix_now() + 600);
    let (status, body) = f.admin(2, "PUT", &target).await;
    assert_eq!(status, 200, "{body}");
    for i in 0..3 {
        let left = PROPAGATION.saturating_sub(started.elapsed());
        let (f, token) = (&f, &token);
        eventually(
            &format!("node {i} to refuse the token"),
            left,
            || async move { (f.get_with(i, "/v/a.mp4", token).await.0 == 401).then_some(()) },
        )
        .await;
    }
    // Another token of the same user is not revoked.
    assert_eq!(f.get(0, "/v/a.mp4").await.0, 200);

    let later = f.add_node().await;
    assert_eq!(f.get_with(later, "/v/a.mp4", &token).await.0, 401);
    assert_eq!(f.get(later, "/v/a.mp4").await.0, 200);

    // Taken back through another node: accepted again everywhere.
    let (status, _) = f.admin(0, "DELETE", "/auth/denylist/jti/lesson%2F1").await;
    assert_eq!(status, 200);
    for i in 0..f.nodes.len() {
        let (f, token) = (&f, &token);
        eventually(
            "the revocation to be taken back",
            PROPAGATION,
            || async move { (f.get_with(i, "/v/a.mp4", token).await.0 == 200).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_from_the_command_line_ends_with_its_lease() {
    let body = bytes(1024, 6);
    let f = Fleet::start(1, &[("v/a.mp4", &body)]).await;
    let mut claims = good_claims("bob");
    claims["jti"] = json!("short");
    let token = hs256(&claims);
    let conf = f.nodes[0].dir.path().join("cdn-node.yaml");
    // A lease of 3 s: the token is refused, then, the lease over, the
    // entry is gone (a real token would have expired by then).
    let exp = (unix_now() + 3).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_cdn-node"))
        .args(["revoke", "--jti", "short", "--exp", &exp, "-c"])
        .arg(&conf)
        .output()
        .expect("run cdn-node revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = &f;
    let token = &token;
    eventually("the token to be refused", PROPAGATION, || async move {
        (f.get_with(0, "/v/a.mp4", token).await.0 == 401).then_some(())
    })
    .await;
    eventually(
        "the revocation's lease to end",
        Duration::from_secs(10),
        || async move {
            let n = f
                .metric(0, APPLIED, &[("kind", "revocation_expired")])
                .await?;
            (n >= 1.0).then_some(())
        },
    )
    .await;
    assert_eq!(f.get_with(0, "/v/a.mp4", token).await.0, 200);
}

/// A rule set larger than one gRPC message (4 MiB) is listed in pages: a
/// node started on 50,000 stored revocations refuses the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lists_more_rules_than_one_message_holds() {
    use etcd_client::{Client, Txn, TxnOp};
    let body = bytes(1024, 8);
    let mut f = Fleet::start(0, &[("v/a.mp4", &body)]).await;
    let mut client = Client::connect([f.etcd.endpoint()], None)
        .await
        .expect("connect");
    const RULES: usize = 50_000;
    for batch in 0..RULES / 1000 {
        let ops: Vec<TxnOp> = (batch * 1000..(batch + 1) * 1000)
            .map(|k| {
                TxnOp::put(
                    format!(
                        "/cdn-node/test/rules/revoke/jti/many-{k:06}-{}",
                        "x".repeat(40)
                    ),
                    format!("{{\"made_at_ms\":{}}}", unix_now() * 1000),
                    None,
                )
            })
            .collect();
        client.txn(Txn::new().and_then(ops)).await.expect("txn");
    }
    let node = f.add_node().await;
    let mut claims = good_claims("dave");
    claims["jti"] = json!(format!("many-{:06}-{}", RULES - 1, "x".repeat(40)));
    assert_eq!(f.get_with(node, "/v/a.mp4", &hs256(&claims)).await.0, 401);
    assert_eq!(f.get(node, "/v/a.mp4").await.0, 200);
}
