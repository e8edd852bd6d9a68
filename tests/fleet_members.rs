//! Membership of a PoP on a real etcd: every node sees the same live
//! members; a node killed with -9 leaves within its lease, a node stopped
//! gracefully leaves before it exits, a node started joins.

mod common;

use std::time::{Duration, Instant};

use common::etcd_fleet::{FLEET, Fleet, LEASE_TTL_SECONDS, POP};
use common::eventually;

const MEMBERS: &str = "cdn_node_fleet_members";

/// Waits until each node of `nodes` sees `want` members, within `limit`
/// of `since`.
async fn members_seen(f: &Fleet, nodes: &[usize], want: f64, since: Instant, limit: Duration) {
    for &i in nodes {
        let left = limit.saturating_sub(since.elapsed());
        eventually(
            &format!("node {i} to see {want} members"),
            left,
            || async move {
                let n = f.metric(i, MEMBERS, &[]).await?;
                (n == want).then_some(())
            },
        )
        .await;
    }
}

fn member_keys(f: &Fleet) -> Vec<String> {
    f.etcd
        .keys(&format!("/cdn-node/{FLEET}/pops/{POP}/members/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_within_its_lease_and_a_new_node_joins() {
    let mut f = Fleet::start(3, &[]).await;
    members_seen(&f, &[0, 1, 2], 3.0, Instant::now(), Duration::from_secs(5)).await;
    let keys = member_keys(&f);
    assert_eq!(keys.len(), 3, "{keys:?}");
    for node in &f.nodes {
        assert!(
            keys.iter().any(|k| k.ends_with(&node.http.to_string())),
            "{} in {keys:?}",
            node.http
        );
    }

    // Killed: its keep-alives stop and etcd ends the lease.
    let killed = Instant::now();
    f.nodes[2].kill();
    let lease = Duration::from_secs(LEASE_TTL_SECONDS) + Duration::from_secs(1);
    members_seen(&f, &[0, 1], 2.0, killed, lease).await;

    // Started: joins once ready.
    let joined = Instant::now();
    let new = f.add_node().await;
    members_seen(&f, &[0, 1, new], 3.0, joined, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_leaves_before_its_lease_ends() {
    // A lease of 30 s: leaving sooner is the node's doing.
    let mut f = Fleet::start_with(2, &[], 30).await;
    members_seen(&f, &[0, 1], 2.0, Instant::now(), Duration::from_secs(5)).await;
    let stopped = Instant::now();
    f.nodes[1].signal("TERM");
    members_seen(&f, &[0], 1.0, stopped, Duration::from_secs(2)).await;
    let status = f.nodes[1].exited(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}
