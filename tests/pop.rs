//! A PoP of nodes and a shield tier, all real processes on 127.0.0.x with
//! s3s-fs behind a tap: each object is fetched from S3 once per fleet, the
//! peer listener opens nothing without a valid hop marker, loops end in
//! 508, and a node killed under load costs only its own share of keys.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use common::bytes;
use common::fleet::{Fleet, Member, Plan, SECRET};
use common::http::{metric, raw};

const VIDEO: &str = "/courses/101/intro.mp4";

fn object(len: usize) -> Vec<u8> {
    bytes(len, 17)
}

/// The fleet's hop marker for `method target`, valid until `expiry`.
fn marker(method: &str, target: &str, expiry: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, format!("v1\n{expiry}\n{method}\n{target}").as_bytes());
    format!("v1.{expiry}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn total(m: &Member, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&m.node.metrics().await, name, labels)
}

/// Responses received from S3 by one node (every status class).
async fn s3_answers(m: &Member) -> f64 {
    let text = m.node.metrics().await;
    ["2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| {
            metric(
                &text,
                "cdn_node_origin_requests_total",
                &[("status_class", c)],
            )
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_object_through_every_node_is_fetched_from_s3_once() {
    let body = object(300_000);
    let key = VIDEO.trim_start_matches('/');
    let fleet = Fleet::start(&[(key, &body)], Plan::default()).await;
    for round in 0..2 {
        for (i, edge) in fleet.edges.iter().enumerate() {
            let (status, headers, got) =
                raw(edge.node.http, "GET", &fleet.target(VIDEO), &[]).await;
            assert_eq!(status, 200, "round {round}, edge {i}");
            assert!(got == body, "round {round}, edge {i}: another body");
            assert!(common::http::header(&headers, "x-amz-request-id").is_none());
        }
    }
    // One GET in all, and no HEAD: the edge's first-slice GET reaches the
    // shield as a cold range inside the first slice, which it asks S3 for
    // with that same GET.
    assert_eq!(fleet.tap.count("GET"), 1, "{:?}", fleet.tap.heads());
    assert_eq!(fleet.tap.count("HEAD"), 0, "{:?}", fleet.tap.heads());
    // Only the shield spoke to S3; the PoP sent its misses to it.
    let asked = fleet.tap.requests() as f64;
    assert_eq!(s3_answers(&fleet.shields[0]).await, asked);
    let mut forwards = 0.0;
    for edge in &fleet.edges {
        assert_eq!(s3_answers(edge).await, 0.0);
        forwards += total(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
    }
    // Six requests, each reaching one edge: those not owned there went on.
    assert!(
        (2.0..=6.0).contains(&forwards),
        "{forwards} forwards in the PoP"
    );
    common::eventually("every member healthy", Duration::from_secs(10), || {
        let m = &fleet.edges[0];
        async move {
            let healthy = total(m, "cdn_node_ring_healthy_members", &[("ring", "pop")]).await;
            (healthy == 3.0).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slices_of_a_video_sought_through_every_node_are_fetched_once() {
    let body = object(3 << 20);
    let key = VIDEO.trim_start_matches('/');
    let plan = Plan {
        cache_extra: "  slice_threshold: 1MiB\n  slice_size: 256KiB\n".into(),
        ..Plan::default()
    };
    let fleet = Fleet::start(&[(key, &body)], plan).await;
    let seeks: [u64; 3] = [0, 1_300_000, 2_900_000];
    for (n, edge) in fleet.edges.iter().enumerate() {
        for i in 0..seeks.len() {
            // Each node asks for each offset once, in another order.
            let at = seeks[(i + n) % seeks.len()];
            let range = format!("bytes={at}-{}", at + 99_999);
            let (status, _, got) = raw(
                edge.node.http,
                "GET",
                &fleet.target(VIDEO),
                &[("range", &range)],
            )
            .await;
            assert_eq!(status, 206, "edge {n} {range}");
            let at = at as usize;
            assert!(
                got == body[at..at + 100_000],
                "edge {n} {range}: wrong bytes"
            );
        }
    }
    // Every request S3 saw is distinct: no slice came twice.
    let heads: Vec<String> = fleet
        .tap
        .heads()
        .iter()
        .map(|h| {
            h.lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.starts_with("get ") || l.starts_with("head ") || l.starts_with("range:")
                })
                .map(|l| l.split(" HTTP/").next().unwrap_or(l).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut unique = heads.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), heads.len(), "{heads:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_opens_nothing_without_a_valid_marker() {
    let body = object(10_000);
    let key = VIDEO.trim_start_matches('/');
    let plan = Plan {
        edges: 1,
        shields: 0,
        ..Plan::default()
    };
    let fleet = Fleet::start(&[(key, &body)], plan).await;
    let peer = fleet.edges[0].peer;
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no marker", None, 403),
        ("garbage", Some("v1.x.y".into()), 403),
        (
            "forged",
            Some(format!(
                "v1.{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                now() + 20
            )),
            403,
        ),
        ("expired", Some(marker("GET", VIDEO, now() - 5)), 403),
        (
            "for another path",
            Some(marker("GET", "/other.mp4", now() + 20)),
            403,
        ),
        ("for HEAD", Some(marker("HEAD", VIDEO, now() + 20)), 403),
        ("valid", Some(marker("GET", VIDEO, now() + 20)), 200),
    ];
    for (name, value, want) in &cases {
        let headers: Vec<(&str, &str)> = value
            .as_deref()
            .map(|v| vec![("cdn-node-hop", v)])
            .unwrap_or_default();
        let (status, _, got) = raw(peer, "GET", VIDEO, &headers).await;
        assert_eq!(status, *want, "{name}");
        if *want == 200 {
            assert!(got == body, "{name}");
        } else {
            assert_eq!(got, b"forbidden\n", "{name}");
        }
    }
    // A client token does not open the peer listener either.
    let (status, _, _) = raw(peer, "GET", &fleet.target(VIDEO), &[]).await;
    assert_eq!(status, 403);
    let (status, _, got) = raw(peer, "GET", "/healthz", &[]).await;
    assert_eq!((status, got.as_slice()), (200, &b"ok\n"[..]));
    let m = &fleet.edges[0];
    assert_eq!(
        total(m, "cdn_node_hops_refused_total", &[("reason", "missing")]).await,
        2.0
    );
    assert_eq!(
        total(m, "cdn_node_hops_refused_total", &[("reason", "expired")]).await,
        1.0
    );
    assert_eq!(
        total(
            m,
            "cdn_node_hops_refused_total",
            &[("reason", "bad_signature")]
        )
        .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shields_that_are_each_others_parent_answer_508_without_a_storm() {
    use common::fleet::{cluster_yaml, free_port_on, member_options, parents_yaml};
    use common::node::Node;
    let a: SocketAddr = ([127, 0, 0, 21], free_port_on([127, 0, 0, 21])).into();
    let b: SocketAddr = ([127, 0, 0, 22], free_port_on([127, 0, 0, 22])).into();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    // S3 is out of their reach: only the parents are left to ask.
    let nowhere = free_port_on([127, 0, 0, 1]);
    for (me, parent) in [(a, b), (b, a)] {
        let dir = tempfile::tempdir().unwrap();
        let opts = member_options(
            nowhere,
            dir.path(),
            "",
            cluster_yaml(me, &[], "  health_check_interval_ms: 200\n"),
            parents_yaml(&[parent]),
        );
        nodes.push(Node::start(opts).await);
        dirs.push(dir);
    }
    for n in &nodes {
        common::eventually("the parent healthy", Duration::from_secs(10), || async {
            let text = n.metrics().await;
            let healthy = metric(
                &text,
                "cdn_node_ring_healthy_members",
                &[("ring", "parents")],
            );
            (healthy == 1.0).then_some(())
        })
        .await;
    }
    let token = common::token::hs256(&common::token::good_claims("alice"));
    let (status, _, got) = raw(nodes[0].http, "GET", &format!("{VIDEO}?jwt={token}"), &[]).await;
    assert_eq!(
        status,
        508,
        "{}",
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
    assert_eq!(got, b"loop detected\n");
    let mut loops = 0.0;
    let mut forwards = 0.0;
    for n in &nodes {
        let text = n.metrics().await;
        loops += metric(&text, "cdn_node_hops_refused_total", &[("reason", "loop")]);
        forwards += metric(&text, "cdn_node_peer_forwards_total", &[("to", "parent")]);
    }
    // A to B, B back to A: A sees its own CDN-Loop entry and stops it, for
    // each request the slicer makes to learn the object (probe, then HEAD).
    assert!((1.0..=4.0).contains(&loops), "{loops} loops seen");
    assert!(
        (2.0..=8.0).contains(&forwards),
        "{forwards} hops: the request went round instead of stopping"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_costs_only_its_share_of_keys() {
    let bodies: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("courses/9/seg-{i:03}.ts"),
                bytes(4_000 + i, i as u64),
            )
        })
        .collect();
    let plan = Plan {
        shields: 0,
        ..Plan::default()
    };
    let mut fleet = Fleet::start(&bodies, plan).await;
    for (i, (k, b)) in bodies.iter().enumerate() {
        let edge = &fleet.edges[i % 3];
        let (status, _, got) =
            raw(edge.node.http, "GET", &fleet.target(&format!("/{k}")), &[]).await;
        assert_eq!(status, 200);
        assert!(got == *b);
    }
    assert_eq!(fleet.tap.count("GET"), 40);
    let share = s3_answers(&fleet.edges[2]).await as usize;
    assert!((1..40).contains(&share), "edge 2 owns {share} of 40 keys");

    // Clients keep asking through the two other nodes while the third is
    // killed: no request may fail, before or after a health check noticed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let targets: Vec<(SocketAddr, String, Vec<u8>)> = bodies
        .iter()
        .enumerate()
        .map(|(i, (k, b))| {
            let at = fleet.edges[i % 2].node.http;
            (at, fleet.target(&format!("/{k}")), b.clone())
        })
        .collect();
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut done = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (addr, target, body) in &targets {
                    let (status, _, got) = raw(*addr, "GET", target, &[]).await;
                    if status != 200 || got != *body {
                        failures.push((target.clone(), status));
                    }
                    done += 1;
                }
            }
            (done, failures)
        })
    };
    fleet.edges[2].node.kill();
    common::eventually(
        "the dead node out of the ring",
        Duration::from_secs(10),
        || {
            let m = &fleet.edges[0];
            async move {
                let healthy = total(m, "cdn_node_ring_healthy_members", &[("ring", "pop")]).await;
                (healthy == 2.0).then_some(())
            }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (done, failures) = load.await.unwrap();
    assert!(done >= 40, "{done} requests");
    assert!(
        failures.is_empty(),
        "{} of {done} failed: {failures:?}",
        failures.len()
    );
    // Only the dead node's keys were fetched again, once each.
    assert_eq!(fleet.tap.count("GET"), 40 + share);
}

/// Requests the `members` forwarded in their PoP.
async fn forwarded(members: &[Member]) -> f64 {
    let mut sum = 0.0;
    for m in members {
        sum += total(m, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
    }
    sum
}

/// The cache status an edge reports for `path`.
async fn cache_status(fleet: &Fleet, edge: usize, path: &str) -> (u16, String) {
    let (status, headers, _) =
        raw(fleet.edges[edge].node.http, "GET", &fleet.target(path), &[]).await;
    let x_cache = common::http::header(&headers, "x-cache")
        .unwrap_or("-")
        .to_string();
    (status, x_cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_one_node_reaches_the_owner_and_the_shield() {
    let body = object(20_000);
    let key = VIDEO.trim_start_matches('/');
    let plan = Plan {
        cache_extra: "  status_header: x-cache\n".into(),
        ..Plan::default()
    };
    let fleet = Fleet::start(&[(key, &body)], plan).await;
    for edge in 0..3 {
        let (status, _) = cache_status(&fleet, edge, VIDEO).await;
        assert_eq!(status, 200);
    }
    assert_eq!(cache_status(&fleet, 0, VIDEO).await, (200, "HIT".into()));
    assert_eq!(fleet.tap.count("GET"), 1);

    // Through whichever node: here one that may not own the key.
    let (status, answer) = fleet.edges[1]
        .admin_post(&format!("/purge?path={VIDEO}"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"nodes\":3"), "{answer}");
    // The owner and the shield lost their copies: the next request misses
    // everywhere and reaches S3 again, once.
    assert_eq!(cache_status(&fleet, 2, VIDEO).await, (200, "MISS".into()));
    assert_eq!(fleet.tap.count("GET"), 2);
    assert_eq!(cache_status(&fleet, 0, VIDEO).await, (200, "HIT".into()));

    // A prefix purge, the same way.
    let (status, answer) = fleet.edges[0]
        .admin_post("/purge?prefix=/courses/101/")
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(cache_status(&fleet, 1, VIDEO).await, (200, "MISS".into()));
    assert_eq!(fleet.tap.count("GET"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_leaves_the_ring_and_no_request_fails() {
    let bodies: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("courses/7/seg-{i:03}.ts"),
                bytes(2_000 + i, 100 + i as u64),
            )
        })
        .collect();
    let plan = Plan {
        shields: 0,
        ..Plan::default()
    };
    let mut fleet = Fleet::start(&bodies, plan).await;
    for (k, _) in &bodies {
        let (status, _, _) = raw(
            fleet.edges[0].node.http,
            "GET",
            &fleet.target(&format!("/{k}")),
            &[],
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = fleet.edges[2].admin_post("/drain").await;
    assert_eq!(status, 200);
    let (status, _, _) = raw(fleet.edges[2].peer, "GET", "/healthz", &[]).await;
    assert_eq!(status, 503);
    for m in &fleet.edges[..2] {
        common::eventually(
            "the drained node out of the ring",
            Duration::from_secs(10),
            || async {
                let healthy = total(m, "cdn_node_ring_healthy_members", &[("ring", "pop")]).await;
                (healthy == 2.0).then_some(())
            },
        )
        .await;
    }
    // Nothing goes to the drained node any more: it can stop.
    let sent_before = forwarded(&fleet.edges[..2]).await;
    let share = s3_answers(&fleet.edges[2]).await;
    fleet.edges[2].node.kill();
    for (i, (k, b)) in bodies.iter().enumerate() {
        let (status, _, got) = raw(
            fleet.edges[i % 2].node.http,
            "GET",
            &fleet.target(&format!("/{k}")),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{k}");
        assert!(got == *b, "{k}");
    }
    let errors: f64 = {
        let mut sum = 0.0;
        for m in &fleet.edges[..2] {
            sum += total(
                m,
                "cdn_node_peer_errors_total",
                &[("to", "peer"), ("kind", "connect")],
            )
            .await;
        }
        sum
    };
    assert_eq!(errors, 0.0, "a request went to the drained node");
    let sent_after = forwarded(&fleet.edges[..2]).await;
    assert!(sent_after > sent_before);
    assert_eq!(fleet.tap.count("GET"), 30 + share as usize);
}
