//! A node of a PoP that does not own a small hot object keeps a copy of
//! the owner's answer in memory and answers it from there (ranges too): not the first
//! time it forwards the key, once it has forwarded it twice; for as long as
//! the owner's freshness lasts; never for what must not be shared or is too
//! large; and a purge through either node removes the copy. A node being
//! stopped finishes the forwarded answers it is sending.

mod common;

use std::time::Duration;

use common::bytes;
use common::fleet::{Fleet, Member, Plan};
use common::http::{header, metric, raw};

const SMALL: usize = 3000;

fn plan() -> Plan {
    Plan {
        edges: 2,
        shields: 0,
        cache_extra: "  status_header: x-cache\n  memory_size: 4MiB\n".into(),
        // Probes that wait up to a second: a loaded machine does not take
        // the other node out of the ring in the middle of a test.
        cluster_extra: "  health_check_interval_ms: 1000\n".into(),
        ..Plan::default()
    }
}

async fn forwards(m: &Member) -> f64 {
    let text = m.node.metrics().await;
    metric(&text, "cdn_node_peer_forwards_total", &[("to", "peer")])
}

/// Cache lookups the node made, whatever their result: every request for
/// an object it answered (health checks make none).
async fn answered(m: &Member) -> f64 {
    let text = m.node.metrics().await;
    text.lines()
        .filter(|l| l.starts_with("cdn_node_cache_lookups_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// GET `path` through edge `at`: status, `X-Cache`, `Age`, body.
async fn get(fleet: &Fleet, at: usize, path: &str) -> (u16, String, Option<u64>, Vec<u8>) {
    let (status, headers, body) =
        raw(fleet.edges[at].node.http, "GET", &fleet.target(path), &[]).await;
    let x_cache = header(&headers, "x-cache").unwrap_or("-").to_string();
    let age = header(&headers, "age").and_then(|v| v.parse().ok());
    (status, x_cache, age, body)
}

/// Of `paths`, the first that edge `at` forwards to the other node (that
/// request is the key's first forward).
async fn owned_by_the_other(fleet: &Fleet, at: usize, paths: &[String]) -> String {
    // Not while a late health check has the other node out of the ring.
    common::eventually(
        "both nodes in the ring",
        Duration::from_secs(10),
        || async {
            let text = fleet.edges[at].node.metrics().await;
            let healthy = metric(&text, "cdn_node_ring_healthy_members", &[("ring", "pop")]);
            (healthy == 2.0).then_some(())
        },
    )
    .await;
    for path in paths {
        let before = forwards(&fleet.edges[at]).await;
        let (status, ..) = get(fleet, at, path).await;
        assert_eq!(status, 200, "{path}");
        if forwards(&fleet.edges[at]).await > before {
            return path.clone();
        }
    }
    panic!("edge {at} owns every one of {paths:?}");
}

/// Objects `v/o-N.bin` of `len` bytes, and their request paths.
fn catalogue(n: usize, len: usize) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let objects: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("v/o-{i}.bin"), bytes(len, 40 + i as u64)))
        .collect();
    let paths = objects.iter().map(|(k, _)| format!("/{k}")).collect();
    (objects, paths)
}

async fn start(objects: &[(String, Vec<u8>)]) -> Fleet {
    Fleet::start(objects, plan()).await
}

fn body_of<'a>(objects: &'a [(String, Vec<u8>)], path: &str) -> &'a [u8] {
    let key = path.trim_start_matches('/');
    &objects.iter().find(|(k, _)| k == key).expect("object").1
}

/// Forwards `path` through edge `at` until it has a copy (the second
/// forward keeps it), then checks the copy answers without the owner.
async fn copied(fleet: &Fleet, at: usize, path: &str, body: &[u8]) {
    let other = &fleet.edges[1 - at];
    // The second forward is copied; a later one when the owner was still
    // storing the object (its answer then streams from the fill, with no
    // length to check the copy against).
    for n in 0.. {
        let (status, x_cache, _, got) = get(fleet, at, path).await;
        assert_eq!(status, 200);
        assert!(got == body);
        if x_cache == "HIT-COPY" {
            assert!(n > 0, "kept after a single forward");
            break;
        }
        assert!(n < 3, "not copied after {} forwards", n + 2);
    }
    // The owner counts a lookup once its answer is sent: wait until it has
    // counted every request forwarded to it so far.
    let forwards_before = forwards(&fleet.edges[at]).await;
    let owner_before = common::eventually(
        "the owner to count the forwarded requests",
        Duration::from_secs(10),
        || async {
            let answered = answered(other).await;
            (answered >= forwards_before).then_some(answered)
        },
    )
    .await;
    for n in 0..3 {
        let (status, x_cache, _, got) = get(fleet, at, path).await;
        assert_eq!((status, x_cache.as_str()), (200, "HIT-COPY"), "hit {n}");
        assert!(got == body, "hit {n}: another body");
    }
    assert_eq!(answered(other).await, owner_before, "the owner was asked");
    assert_eq!(forwards(&fleet.edges[at]).await, forwards_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_small_object_is_answered_from_the_non_owners_memory() {
    let (objects, paths) = catalogue(16, SMALL);
    let fleet = start(&objects).await;
    let path = owned_by_the_other(&fleet, 0, &paths).await;
    let body = body_of(&objects, &path);
    copied(&fleet, 0, &path, body).await;
    // S3 was asked for it once, by the owner.
    let asked = format!("GET /videos{path} ");
    let gets = fleet.tap.heads();
    assert_eq!(
        gets.iter().filter(|h| h.starts_with(&asked)).count(),
        1,
        "{gets:?}"
    );
    // Counted as this node's hits.
    let text = fleet.edges[0].node.metrics().await;
    assert!(metric(&text, "cdn_node_cache_lookups_total", &[("result", "hit")]) >= 3.0);
    // A HEAD and ranges are answered from the copy too.
    let owner_before = answered(&fleet.edges[1]).await;
    let (status, headers, got) =
        raw(fleet.edges[0].node.http, "HEAD", &fleet.target(&path), &[]).await;
    assert_eq!(status, 200);
    assert!(got.is_empty());
    assert_eq!(header(&headers, "x-cache"), Some("HIT-COPY"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(SMALL.to_string().as_str())
    );
    let ranged = |range: &'static str| {
        let target = fleet.target(&path);
        let at = fleet.edges[0].node.http;
        async move { raw(at, "GET", &target, &[("range", range)]).await }
    };
    let (status, headers, got) = ranged("bytes=10-19").await;
    assert_eq!(status, 206);
    assert!(got == body[10..20]);
    assert_eq!(header(&headers, "x-cache"), Some("HIT-COPY"));
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 10-19/{SMALL}").as_str())
    );
    let (status, headers, got) = ranged("bytes=0-1,10-11").await;
    assert_eq!(status, 206);
    let kind = header(&headers, "content-type").unwrap_or("-");
    assert!(kind.starts_with("multipart/byteranges"), "{kind}");
    assert_eq!(
        header(&headers, "content-length"),
        Some(got.len().to_string().as_str())
    );
    assert!(got.windows(2).any(|w| w == &body[10..12]));
    let (status, headers, _) = ranged("bytes=5000-").await;
    assert_eq!(status, 416);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes */{SMALL}").as_str())
    );
    assert_eq!(answered(&fleet.edges[1]).await, owner_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_either_node_removes_the_copy() {
    let (objects, paths) = catalogue(16, SMALL);
    let fleet = start(&objects).await;
    let path = owned_by_the_other(&fleet, 0, &paths).await;
    let body = body_of(&objects, &path);
    copied(&fleet, 0, &path, body).await;
    for (round, through) in [1, 0].into_iter().enumerate() {
        let (status, answer) = fleet.edges[through]
            .admin_post(&format!("/purge?path={path}"))
            .await;
        assert_eq!(status, 200, "{answer}");
        let gets = fleet.tap.count("GET");
        let before = forwards(&fleet.edges[0]).await;
        let (status, x_cache, _, got) = get(&fleet, 0, &path).await;
        assert_eq!((status, x_cache.as_str()), (200, "MISS"), "round {round}");
        assert!(got == body);
        assert_eq!(forwards(&fleet.edges[0]).await, before + 1.0);
        assert_eq!(fleet.tap.count("GET"), gets + 1, "round {round}");
        // And it is copied again, the same way.
        copied(&fleet, 0, &path, body).await;
    }
    // A prefix purge too.
    let (status, answer) = fleet.edges[1].admin_post("/purge?prefix=/v/").await;
    assert_eq!(status, 200, "{answer}");
    let (_, x_cache, ..) = get(&fleet, 0, &path).await;
    assert_eq!(x_cache, "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_not_be_shared_or_is_too_large_is_never_kept() {
    let (mut objects, paths) = catalogue(16, SMALL);
    // Enough that the other node owns one whatever ports the ring was built
    // from: eight left it none once in about 256 runs.
    let (large, large_paths) = catalogue(24, 100_000);
    // Other names for the large ones.
    let large: Vec<(String, Vec<u8>)> = large
        .into_iter()
        .map(|(k, b)| (k.replace("o-", "large-"), b))
        .collect();
    let large_paths: Vec<String> = large_paths
        .iter()
        .map(|p| p.replace("o-", "large-"))
        .collect();
    objects.extend(large);
    let fleet = start(&objects).await;
    let edge = &fleet.edges[0];
    let mut kept_out = Vec::new();
    for value in ["no-store", "private"] {
        let left: Vec<String> = paths
            .iter()
            .filter(|p| !kept_out.contains(*p))
            .cloned()
            .collect();
        let path = owned_by_the_other(&fleet, 0, &left).await;
        fleet
            .s3
            .set_cache_control(path.trim_start_matches('/'), value);
        // The owner stored it before: it fetches it anew.
        let (status, answer) = fleet.edges[1]
            .admin_post(&format!("/purge?path={path}"))
            .await;
        assert_eq!(status, 200, "{answer}");
        kept_out.push(path);
    }
    kept_out.push(owned_by_the_other(&fleet, 0, &large_paths).await);
    for path in &kept_out {
        let body = body_of(&objects, path);
        for n in 0..4 {
            let before = forwards(edge).await;
            let (status, x_cache, _, got) = get(&fleet, 0, path).await;
            assert_eq!(status, 200, "{path} {n}");
            assert_ne!(x_cache, "HIT-COPY", "{path} {n}");
            assert!(got == body, "{path} {n}");
            assert_eq!(forwards(edge).await, before + 1.0, "{path} {n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_lasts_as_long_as_the_owner_had_left() {
    let (objects, paths) = catalogue(16, SMALL);
    let fleet = start(&objects).await;
    let path = owned_by_the_other(&fleet, 0, &paths).await;
    fleet
        .s3
        .set_cache_control(path.trim_start_matches('/'), "max-age=3");
    // The owner still holds it for the default lifetime: purge it there, so
    // that it stores the object anew with its 3 s.
    let (status, answer) = fleet.edges[1]
        .admin_post(&format!("/purge?path={path}"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let body = body_of(&objects, &path);
    copied(&fleet, 0, &path, body).await;
    // The copy answers with the owner's age, then expires with the owner's
    // copy: the next request goes to the owner again.
    let expired = common::eventually("the copy expired", Duration::from_secs(10), || async {
        let before = forwards(&fleet.edges[0]).await;
        let (status, x_cache, age, got) = get(&fleet, 0, &path).await;
        assert_eq!(status, 200);
        assert!(got == body);
        if x_cache == "HIT-COPY" {
            assert!(age.is_some_and(|a| a <= 3), "age {age:?}");
            return None;
        }
        Some(forwards(&fleet.edges[0]).await - before)
    })
    .await;
    assert_eq!(expired, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_memory_copies_off_every_request_is_forwarded() {
    let (objects, paths) = catalogue(16, SMALL);
    let mut off = plan();
    off.cluster_extra.push_str("  memory_copies: false\n");
    let fleet = Fleet::start(&objects, off).await;
    let path = owned_by_the_other(&fleet, 0, &paths).await;
    for n in 0..4 {
        let before = forwards(&fleet.edges[0]).await;
        let (status, x_cache, ..) = get(&fleet, 0, &path).await;
        assert_eq!((status, x_cache.as_str()), (200, "HIT"), "{n}");
        assert_eq!(forwards(&fleet.edges[0]).await, before + 1.0, "{n}");
    }
}

/// With a `fleet` section a purge is a rule in etcd that every node
/// applies: the copies go too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_purge_from_etcd_removes_the_copy() {
    use common::etcd::Etcd;
    use common::fleet::{cluster_yaml, free_port_on, member_options};
    use common::node::Node;
    use common::tap::Tap;
    use std::net::SocketAddr;

    let (objects, paths) = catalogue(16, SMALL);
    let etcd = Etcd::start().await;
    let s3 = common::s3::S3::start(&objects).await;
    let tap = Tap::start(s3.port).await;
    let endpoint = etcd.endpoint();
    let mut edges = Vec::new();
    for ip in [[127, 0, 0, 41], [127, 0, 0, 42]] {
        let me = SocketAddr::from((ip, free_port_on(ip)));
        let cache = tempfile::tempdir().unwrap();
        let mut opts = member_options(
            tap.port,
            cache.path(),
            &plan().cache_extra,
            // No static peers: the ring is the PoP's members in etcd.
            cluster_yaml(me, &[], &plan().cluster_extra),
            String::new(),
        );
        opts.extra_yaml.push_str(&format!(
            "fleet:\n  name: test\n  pop: pop1\n  lease_ttl_seconds: 2\n  etcd:\n    endpoints: [\"{endpoint}\"]\n"
        ));
        edges.push(Member {
            node: Node::start(opts).await,
            peer: me,
            _cache: cache,
        });
    }
    for edge in &edges {
        common::eventually("the PoP from etcd", Duration::from_secs(15), || async {
            let text = edge.node.metrics().await;
            let healthy = metric(&text, "cdn_node_ring_healthy_members", &[("ring", "pop")]);
            (healthy == 2.0).then_some(())
        })
        .await;
    }
    let fleet = Fleet {
        s3,
        tap,
        shields: Vec::new(),
        edges,
        token: common::token::hs256(&common::token::good_claims("alice")),
        tls: None,
    };
    let path = owned_by_the_other(&fleet, 0, &paths).await;
    let body = body_of(&objects, &path);
    copied(&fleet, 0, &path, body).await;
    let (status, answer) = fleet.edges[0]
        .admin_post(&format!("/purge?path={path}"))
        .await;
    assert!((200..300).contains(&status), "{status} {answer}");
    for edge in &fleet.edges {
        common::eventually("the purge applied", Duration::from_secs(5), || async {
            let text = edge.node.metrics().await;
            let applied = metric(
                &text,
                "cdn_node_fleet_rules_applied_total",
                &[("kind", "purge")],
            );
            (applied >= 1.0).then_some(())
        })
        .await;
    }
    let gets = fleet.tap.count("GET");
    let (status, x_cache, _, got) = get(&fleet, 0, &path).await;
    assert_eq!((status, x_cache.as_str()), (200, "MISS"));
    assert!(got == body);
    assert_eq!(fleet.tap.count("GET"), gets + 1);
    drop(etcd);
}

/// A node being stopped (SIGTERM) while it sends a forwarded answer
/// finishes that answer before it exits: the peer listener's connections
/// are waited for as the clients' are, though the node has no client of
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_forward_finishes_the_answer_then_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Larger than what the sockets and the forwarding node can hold on
    // the way (about 14 MiB on loopback): the owner is still sending when
    // it is stopped. Not sliced (64 MiB and under).
    const LEN: usize = 24 << 20;
    // Enough objects that edge 0 owns them all only once in 65,536 rings
    // (with 8, once in 256: the ring follows the nodes' random ports).
    let (objects, paths) = catalogue(16, LEN);
    let mut fleet = start(&objects).await;
    drop(objects);
    let mut found = None;
    for path in &paths {
        let before = forwards(&fleet.edges[0]).await;
        let (status, _, _) = raw(fleet.edges[0].node.http, "HEAD", &fleet.target(path), &[]).await;
        assert_eq!(status, 200, "{path}");
        if forwards(&fleet.edges[0]).await > before {
            found = Some(path.clone());
            break;
        }
    }
    let path = found.expect("edge 0 owns all 16 objects: none is forwarded");
    let seed = 40 + paths.iter().position(|p| *p == path).unwrap() as u64;

    // A client that reads the head and a little of the body, then stops
    // reading; a small receive buffer keeps the rest upstream.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut conn = socket.connect(fleet.edges[0].node.http).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
        fleet.target(&path)
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("the head within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&chunk[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n")
            && got.len() >= i + 4 + 64 * 1024
        {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let owner = &mut fleet.edges[1];
    owner.node.signal("TERM");
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await
    .expect("the rest within 30 s")
    .expect("the rest of the answer");
    got.extend_from_slice(&rest);
    let body = &got[head_end..];
    assert_eq!(body.len(), LEN, "the answer was cut");
    assert!(body == bytes(LEN, seed), "another body");
    let status = owner.node.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
}
