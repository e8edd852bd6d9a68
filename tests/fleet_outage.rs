//! The fleet when etcd is away: nodes keep serving with the rules they
//! applied, say so in their metrics and `/readyz`, and catch up when etcd
//! is back, by listing again; a compaction of the revisions a node missed
//! does not lose a rule.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::etcd_fleet::Fleet;
use common::http::{header, raw};
use common::relay::Relay;
use common::token::hs256;
use common::{bytes, eventually};
use serde_json::json;

const WATCH_UP: &str = "cdn_node_fleet_watch_up";
const CONNECTED: &str = "cdn_node_fleet_etcd_connected";
const APPLIED: &str = "cdn_node_fleet_rules_applied_total";
const LISTS: &str = "cdn_node_fleet_lists_total";

/// Light load on every node: GETs of `paths` in turn, counting answers
/// and failures (anything but 200), until stopped.
struct Load {
    served: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(f: &Fleet, paths: &[&str]) -> Load {
        let targets: Vec<_> = f
            .nodes
            .iter()
            .flat_map(|n| {
                paths
                    .iter()
                    .map(move |p| (n.http, format!("{p}?jwt={}", f.token)))
            })
            .collect();
        let (served, failed, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (s, fl, st) = (served.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                for (addr, target) in &targets {
                    let (status, _, _) = raw(*addr, "GET", target, &[]).await;
                    if status == 200 { &s } else { &fl }.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Load {
            served,
            failed,
            stop,
            task,
        }
    }

    /// Waits until `n` more requests were answered.
    async fn serve(&self, n: u64, limit: Duration) {
        let target = self.served.load(Ordering::Relaxed) + n;
        let served = &self.served;
        eventually(&format!("{n} more requests"), limit, || async move {
            (served.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await;
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task");
        (
            self.served.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

async fn metric_is(
    f: &Fleet,
    i: usize,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    limit: Duration,
) {
    eventually(
        &format!("node {i}: {name} {labels:?} = {want}"),
        limit,
        || async move { (f.metric(i, name, labels).await? == want).then_some(()) },
    )
    .await;
}

async fn metric_at_least(
    f: &Fleet,
    i: usize,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    limit: Duration,
) {
    eventually(
        &format!("node {i}: {name} {labels:?} >= {want}"),
        limit,
        || async move { (f.metric(i, name, labels).await? >= want).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_under_load_fails_no_request_and_the_nodes_catch_up() {
    let body = bytes(16 * 1024, 11);
    let mut f = Fleet::start(2, &[("v/a.mp4", &body), ("v/b.mp4", &body)]).await;
    let load = Load::start(&f, &["/v/a.mp4", "/v/b.mp4"]);
    load.serve(50, Duration::from_secs(10)).await;

    f.etcd.stop();
    for i in 0..2 {
        metric_is(&f, i, WATCH_UP, &[], 0.0, Duration::from_secs(10)).await;
        metric_is(&f, i, CONNECTED, &[], 0.0, Duration::from_secs(10)).await;
        let (status, _, body) = raw(f.nodes[i].admin, "GET", "/readyz", &[]).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "still serving: {body}");
        assert!(body.contains("etcd unreachable"), "{body}");
    }
    // About ten seconds of load with etcd away (some 200 requests a second).
    load.serve(2000, Duration::from_secs(40)).await;
    let (status, _) = f.admin(0, "POST", "/purge?path=/v/a.mp4").await;
    assert_eq!(status, 503, "a rule etcd did not take is refused");

    f.etcd.resume().await;
    for i in 0..2 {
        metric_is(&f, i, WATCH_UP, &[], 1.0, Duration::from_secs(10)).await;
    }
    load.serve(50, Duration::from_secs(10)).await;
    let (served, failed) = load.finish().await;
    assert_eq!(failed, 0, "{failed} of {} requests failed", served + failed);
    // Back to normal: a purge through either node reaches both.
    let (status, body) = f.admin(1, "POST", "/purge?path=/v/a.mp4").await;
    assert_eq!(status, 200, "{body}");
    for i in 0..2 {
        metric_at_least(
            &f,
            i,
            APPLIED,
            &[("kind", "purge")],
            1.0,
            Duration::from_secs(1),
        )
        .await;
    }
}

/// A node cut off from etcd misses what another node writes meanwhile,
/// then lists it when it is back, even after etcd compacted the revisions
/// it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_written_while_a_node_was_cut_off_are_applied_when_it_is_back() {
    let body = bytes(8 * 1024, 12);
    let mut f = Fleet::start(1, &[("v/a.mp4", &body), ("v/b.mp4", &body)]).await;
    let relay = Relay::start(f.etcd.client_port).await;
    let cut_off = f.add_node_via(&relay.endpoint()).await;
    for path in ["/v/a.mp4", "/v/b.mp4"] {
        for i in 0..2 {
            f.get(i, path).await;
        }
    }
    let mut claims = common::token::good_claims("carol");
    claims["jti"] = json!("cut-1");
    let token = hs256(&claims);
    let load = Load::start(&f, &["/v/b.mp4"]);

    relay.cut();
    metric_is(&f, cut_off, WATCH_UP, &[], 0.0, Duration::from_secs(10)).await;
    let (status, _) = f.admin(0, "POST", "/purge?path=/v/a.mp4").await;
    assert_eq!(status, 200);
    let (status, _) = f.admin(0, "PUT", "/auth/denylist/jti/cut-1").await;
    assert_eq!(status, 200);
    metric_at_least(
        &f,
        0,
        APPLIED,
        &[("kind", "purge")],
        1.0,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(f.get_with(0, "/v/a.mp4", &token).await.0, 401);
    // Not applied where etcd is out of reach.
    assert_eq!(
        f.metric(cut_off, APPLIED, &[("kind", "purge")]).await,
        Some(0.0)
    );
    let (_, headers, _) = f.get(cut_off, "/v/a.mp4").await;
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));

    // etcd forgets the history the node missed.
    let revision = f.etcd.revision().to_string();
    f.etcd.ctl(&["compact", &revision]).expect("compact");
    let lists_before = f
        .metric(cut_off, LISTS, &[("reason", "error")])
        .await
        .unwrap_or(0.0);

    relay.restore();
    metric_is(&f, cut_off, WATCH_UP, &[], 1.0, Duration::from_secs(10)).await;
    metric_at_least(
        &f,
        cut_off,
        APPLIED,
        &[("kind", "purge")],
        1.0,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        f.metric(cut_off, LISTS, &[("reason", "error")])
            .await
            .unwrap_or(0.0)
            > lists_before
    );
    assert_eq!(f.get_with(cut_off, "/v/a.mp4", &token).await.0, 401);
    let (_, headers, _) = f.get(cut_off, "/v/a.mp4").await;
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    let (served, failed) = load.finish().await;
    assert_eq!(failed, 0, "{failed} of {} requests failed", served + failed);
}
