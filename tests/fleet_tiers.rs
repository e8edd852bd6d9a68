//! The control plane and the tiers together: edges whose PoP ring is built
//! from the members listed in etcd, a shield in the same fleet, and a
//! purge through one edge that reaches the shield too (else the edges
//! would refill from its old copy).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::fleet::{Member, cluster_yaml, free_port_on, member_options, parents_yaml};
use common::http::{header, metric, raw};
use common::node::Node;
use common::tap::Tap;

const VIDEO: &str = "/courses/5/lesson.mp4";

fn fleet_section(endpoint: &str, pop: &str) -> String {
    format!(
        "fleet:\n  name: test\n  pop: {pop}\n  lease_ttl_seconds: 2\n  etcd:\n    endpoints: [\"{endpoint}\"]\n"
    )
}

async fn value(m: &Member, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&m.node.metrics().await, name, labels)
}

/// A GET through a node: its `X-Cache`, after checking the answer.
async fn fetch(at: SocketAddr, target: String, body: &[u8]) -> String {
    let (status, headers, got) = raw(at, "GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert!(got == body, "another body");
    header(&headers, "x-cache").unwrap_or("-").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_ring_their_etcd_members_and_a_purge_reaches_the_shield() {
    let body = common::bytes(50_000, 5);
    let etcd = Etcd::start().await;
    let s3 = common::s3::S3::start(&[(VIDEO.trim_start_matches('/'), &body)]).await;
    let tap = Tap::start(s3.port).await;
    let endpoint = etcd.endpoint();
    let addr = |ip: [u8; 4]| SocketAddr::from((ip, free_port_on(ip)));
    let start = |me: SocketAddr, pop: &str, parents: String| {
        let cache = tempfile::tempdir().unwrap();
        let mut opts = member_options(
            tap.port,
            cache.path(),
            "  status_header: x-cache\n",
            // No static peers: the ring is the PoP's members in etcd.
            cluster_yaml(me, &[], "  health_check_interval_ms: 200\n"),
            parents,
        );
        opts.extra_yaml.push_str(&fleet_section(&endpoint, pop));
        async move {
            Member {
                node: Node::start(opts).await,
                peer: me,
                _cache: cache,
            }
        }
    };
    let shield_addr = addr([127, 0, 0, 30]);
    let shield = start(shield_addr, "shields", String::new()).await;
    let mut edges = Vec::new();
    for ip in [[127, 0, 0, 31], [127, 0, 0, 32], [127, 0, 0, 33]] {
        edges.push(start(addr(ip), "pop1", parents_yaml(&[shield_addr])).await);
    }
    for edge in &edges {
        common::eventually(
            "the PoP's members from etcd",
            Duration::from_secs(15),
            || async {
                let pop = value(edge, "cdn_node_ring_healthy_members", &[("ring", "pop")]).await;
                let parents = value(
                    edge,
                    "cdn_node_ring_healthy_members",
                    &[("ring", "parents")],
                )
                .await;
                (pop == 3.0 && parents == 1.0).then_some(())
            },
        )
        .await;
    }
    let token = common::token::hs256(&common::token::good_claims("alice"));
    let target = format!("{VIDEO}?jwt={token}");
    let get = |edge: &Member| fetch(edge.node.http, target.clone(), &body);
    for edge in &edges {
        get(edge).await;
    }
    // One owner in the PoP, one shield: S3 asked once.
    assert_eq!(tap.count("GET"), 1, "{:?}", tap.heads());
    assert_eq!(get(&edges[0]).await, "HIT");

    let purged = Instant::now();
    let auth = format!("Bearer {}", common::world::ADMIN_TOKEN);
    let (status, _, answer) = raw(
        edges[1].node.admin,
        "POST",
        &format!("/purge?path={VIDEO}"),
        &[("authorization", &auth), ("content-length", "0")],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    for node in edges.iter().chain([&shield]) {
        common::eventually("the purge applied", Duration::from_secs(5), || async {
            let applied = value(
                node,
                "cdn_node_fleet_rules_applied_total",
                &[("kind", "purge")],
            )
            .await;
            (applied >= 1.0).then_some(())
        })
        .await;
    }
    let took = purged.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the purge took {took:?} to reach every node"
    );
    // The shield lost its copy too: the refill reaches S3, once.
    assert_eq!(get(&edges[2]).await, "MISS");
    assert_eq!(tap.count("GET"), 2, "{:?}", tap.heads());
    assert_eq!(get(&edges[0]).await, "HIT");
}
