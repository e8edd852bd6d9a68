//! A request for a key another node of the PoP owns is forwarded by the
//! hit lane itself, over HTTP/1 and HTTP/2: its answer is the one
//! Pingora's proxy path gives, field for field and byte for byte, and it is
//! counted in the same series; an owner
//! that cannot be reached costs no request (it is served by the next node
//! on the ring, here the node itself) and the client's one-time token is
//! checked once on the way.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::bytes;
use common::curl::{assert_same_answer, curl, in_lane_and_by_proxy};
use common::fleet::{Fleet, Member, Plan};
use common::http::{Headers, metric, raw};
use common::token::{good_claims, hs256};
use serde_json::json;

const LEN: usize = 5000;

fn objects() -> Vec<(String, Vec<u8>)> {
    (0..16)
        .map(|i| (format!("v/o-{i}.bin"), bytes(LEN, 70 + i as u64)))
        .collect()
}

fn plan(auth_extra: &str) -> Plan {
    Plan {
        edges: 2,
        shields: 0,
        cache_extra: "  status_header: x-cache\n".into(),
        // Every request forwarded (no copies of hot keys), and probes
        // slow enough that a loaded machine keeps both nodes in the ring.
        cluster_extra: "  health_check_interval_ms: 1000\n  memory_copies: false\n".into(),
        auth_extra: auth_extra.into(),
        ..Plan::default()
    }
}

async fn sample(m: &Member, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&m.node.metrics().await, name, labels)
}

/// Of `objects`, the first whose request through edge 0 is forwarded to
/// edge 1, asked with tokens from `token`.
async fn owned_by_edge_1(
    fleet: &Fleet,
    objects: &[(String, Vec<u8>)],
    mut token: impl FnMut() -> String,
) -> String {
    for (key, body) in objects {
        let path = format!("/{key}");
        let before = sample(
            &fleet.edges[0],
            "cdn_node_peer_forwards_total",
            &[("to", "peer")],
        )
        .await;
        let target = format!("{path}?jwt={}", token());
        let (status, _, got) = raw(fleet.edges[0].node.http, "GET", &target, &[]).await;
        assert!(status == 200 && got == *body, "{path}: {status}");
        let after = sample(
            &fleet.edges[0],
            "cdn_node_peer_forwards_total",
            &[("to", "peer")],
        )
        .await;
        if after > before {
            return path;
        }
    }
    panic!("edge 0 owns every object");
}

/// `cdn_node_requests_total`'s series (status class, cache status) and
/// their values.
async fn requests(m: &Member) -> BTreeMap<String, f64> {
    m.node
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("cdn_node_requests_total{"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The one request counted since `before` (a request is counted once its
/// answer is sent): its series.
async fn counted_since(m: &Member, before: &BTreeMap<String, f64>) -> String {
    common::eventually("the request counted", Duration::from_secs(10), || async {
        let now = requests(m).await;
        let moved: Vec<&String> = now
            .iter()
            .filter(|(series, v)| **v > before.get(*series).copied().unwrap_or(0.0))
            .map(|(series, _)| series)
            .collect();
        match moved.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    })
    .await
}

/// The fields of an answer but `Date` (the second may change between two
/// answers) and the owner's `Age` value.
fn comparable(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
        .map(|(n, v)| match n.eq_ignore_ascii_case("age") {
            true => (n.clone(), "-".into()),
            false => (n.clone(), v.clone()),
        })
        .collect()
}

/// (name, method, target, extra fields).
type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_in_the_lane_answers_as_the_proxy_path_does() {
    let objects = objects();
    let fleet = Fleet::start(&objects, plan("")).await;
    let token = fleet.token.clone();
    let path = owned_by_edge_1(&fleet, &objects, || token.clone()).await;
    let edge = &fleet.edges[0];
    let good = fleet.target(&path);
    // A key edge 1 owns that S3 does not hold.
    let mut missing = String::new();
    for i in 0.. {
        assert!(i < 64, "edge 0 owns every missing key");
        let target = fleet.target(&format!("/v/none-{i}.bin"));
        let before = sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
        let (status, _, _) = raw(edge.node.http, "GET", &target, &[]).await;
        assert_eq!(status, 404);
        if sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await > before {
            missing = target;
            break;
        }
    }
    let cases: Vec<Case> = vec![
        ("whole", "GET", &good, vec![]),
        ("head", "HEAD", &good, vec![]),
        ("range", "GET", &good, vec![("range", "bytes=10-19")]),
        ("suffix", "GET", &good, vec![("range", "bytes=-100")]),
        ("past the end", "GET", &good, vec![("range", "bytes=9000-")]),
        ("missing", "GET", &missing, vec![]),
    ];
    for (name, method, target, extra) in &cases {
        let lane_before = sample(edge, "cdn_node_lane_answers_total", &[]).await;
        let forwards_before = sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
        let counted = requests(edge).await;
        let (status, headers, body) = raw(edge.node.http, method, target, extra).await;
        let lane = sample(edge, "cdn_node_lane_answers_total", &[]).await - lane_before;
        assert_eq!(lane, 1.0, "{name}: not answered by the lane");
        let by_lane = counted_since(edge, &counted).await;
        // The same request on Pingora's path: a request with a body field
        // is never the lane's.
        let mut with_body = extra.clone();
        with_body.push(("content-length", "0"));
        let counted = requests(edge).await;
        let (p_status, p_headers, p_body) = raw(edge.node.http, method, target, &with_body).await;
        let by_proxy = counted_since(edge, &counted).await;
        assert_eq!(by_lane, by_proxy, "{name}: counted otherwise");
        let lane = sample(edge, "cdn_node_lane_answers_total", &[]).await - lane_before;
        assert_eq!(
            lane, 1.0,
            "{name}: the proxy path's request went to the lane"
        );
        let forwards =
            sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await - forwards_before;
        assert_eq!(forwards, 2.0, "{name}: both forwarded to the owner");
        assert_eq!(status, p_status, "{name}");
        assert_eq!(comparable(&headers), comparable(&p_headers), "{name}");
        assert!(body == p_body, "{name}: bodies differ");
    }
    // What each case got.
    let statuses: Vec<u16> = {
        let mut got = Vec::new();
        for (_, method, target, extra) in &cases {
            got.push(raw(edge.node.http, method, target, extra).await.0);
        }
        got
    };
    assert_eq!(statuses, [200, 200, 206, 206, 416, 404]);
    // The owner answered the forwards from its cache.
    let hits = sample(
        &fleet.edges[1],
        "cdn_node_cache_lookups_total",
        &[("result", "hit")],
    )
    .await;
    assert!(hits >= 10.0, "owner hits {hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_forward_in_the_lane_answers_as_the_proxy_path_does() {
    let objects = objects();
    let plan = Plan {
        https: true,
        ..plan("")
    };
    let fleet = Fleet::start(&objects, plan).await;
    let token = fleet.token.clone();
    let path = owned_by_edge_1(&fleet, &objects, || token.clone()).await;
    let edge = &fleet.edges[0];
    let https = edge.node.https.expect("an HTTPS listener");
    let tls = fleet.tls.as_ref().expect("the edges' certificate");
    let (ca, dir) = (tls.served.cert.clone(), tls.certs.dir().to_path_buf());
    let url = format!("https://localhost:{}{}", https.port(), fleet.target(&path));
    type H2Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<H2Case> = vec![
        ("whole", "GET", vec![]),
        ("head", "HEAD", vec![]),
        ("range", "GET", vec![("range", "bytes=10-19")]),
        ("suffix", "GET", vec![("range", "bytes=-100")]),
    ];
    let count = cases.len() as f64;
    let lane_before = sample(edge, "cdn_node_lane_answers_total", &[]).await;
    let forwards_before = sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
    let answers = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|(name, method, extra)| {
                let (in_lane, by_proxy) = in_lane_and_by_proxy(&ca, &dir, method, &url, &extra);
                (name, in_lane, by_proxy)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (name, in_lane, by_proxy) in answers {
        assert_same_answer(name, &in_lane, &by_proxy);
    }
    let lane = sample(edge, "cdn_node_lane_answers_total", &[]).await - lane_before;
    assert_eq!(lane, count, "the lane answered one of each pair");
    let forwards =
        sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await - forwards_before;
    assert_eq!(forwards, 2.0 * count, "every request forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_owner_costs_no_request_and_the_token_is_checked_once() {
    unreachable_owner(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_an_unreachable_owner_costs_no_request_and_the_token_is_checked_once() {
    unreachable_owner(true).await;
}

/// Edge 1 killed while edge 0 keeps a connection to it: the next request
/// through edge 0 (over HTTP/2 with `http2`) is the lane's forward that
/// fails, and it is answered all the same, its one-time token spent once.
async fn unreachable_owner(http2: bool) {
    let objects = objects();
    let replay = "  replay_protection: true\n  replay_cache_entries: 1000\n";
    let plan = Plan {
        https: http2,
        ..plan(replay)
    };
    let mut fleet = Fleet::start(&objects, plan).await;
    let path = owned_by_edge_1(&fleet, &objects, once).await;
    let body = objects
        .iter()
        .find(|(k, _)| format!("/{k}") == path)
        .map(|(_, b)| b.clone())
        .expect("object");
    let get = {
        let http = fleet.edges[0].node.http;
        let https = fleet.edges[0].node.https;
        let tls = fleet
            .tls
            .as_ref()
            .map(|t| (t.served.cert.clone(), t.certs.dir().to_path_buf()));
        move |target: String| {
            let tls = tls.clone();
            async move {
                match (https, tls) {
                    (Some(https), Some((ca, dir))) => {
                        let url = format!("https://localhost:{}{target}", https.port());
                        let got =
                            tokio::task::spawn_blocking(move || curl(&ca, &dir, "GET", &url, &[]))
                                .await
                                .unwrap();
                        assert_eq!(got.version, "HTTP/2");
                        (got.status, got.body)
                    }
                    _ => {
                        let (status, _, body) = raw(http, "GET", &target, &[]).await;
                        (status, body)
                    }
                }
            }
        }
    };
    // A kept connection to the owner is in the lane's pool; the owner dies.
    assert_eq!(get(format!("{path}?jwt={}", once())).await.0, 200);
    fleet.edges[1].node.kill();
    let edge = &fleet.edges[0];
    let errors = |kind: &'static str| async move {
        sample(
            edge,
            "cdn_node_peer_errors_total",
            &[("to", "peer"), ("kind", kind)],
        )
        .await
    };
    let connect_errors = errors("connect").await;
    let lane_before = sample(edge, "cdn_node_lane_answers_total", &[]).await;
    // Before a health check notices: the lane's forward fails, the request
    // goes on on Pingora's path with the token the lane checked.
    let target = format!("{path}?jwt={}", once());
    let (status, got) = get(target.clone()).await;
    assert_eq!(status, 200, "a request was lost to the dead owner");
    assert!(got == body);
    assert_eq!(errors("connect").await, connect_errors + 1.0);
    let lane = sample(edge, "cdn_node_lane_answers_total", &[]).await - lane_before;
    assert_eq!(lane, 0.0, "answered by the lane");
    let replayed = sample(
        edge,
        "cdn_node_auth_rejections_total",
        &[("reason", "replayed")],
    )
    .await;
    assert_eq!(replayed, 0.0, "the one-time token was checked twice");
    // The token was spent once, by that request.
    assert_eq!(get(target).await.0, 401);
    // The owner stays passed over: the next requests are served here.
    common::eventually(
        "requests served without the dead owner",
        Duration::from_secs(10),
        || async {
            let (status, _) = get(format!("{path}?jwt={}", once())).await;
            (status == 200).then_some(())
        },
    )
    .await;
}

/// A one-time token of its own for each call.
fn once() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut claims = good_claims("alice");
    claims["jti"] = json!(format!("view-{}", N.fetch_add(1, Ordering::Relaxed)));
    hs256(&claims)
}

/// An owner killed in the middle of a large answer: the client gets fewer
/// bytes than its `Content-Length` and a closed connection, never an
/// answer that looks whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_lost_mid_body_leaves_a_short_answer_and_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BIG: usize = 32 << 20;
    let objects = objects();
    let mut fleet = Fleet::start(&objects, plan("")).await;
    let edge = &fleet.edges[0];
    // A key edge 1 owns (found as a 404), then made an object.
    let mut path = String::new();
    for i in 0.. {
        assert!(i < 64, "edge 0 owns every key tried");
        let candidate = format!("/v/big-{i}.bin");
        let before = sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await;
        let (status, _, _) = raw(edge.node.http, "GET", &fleet.target(&candidate), &[]).await;
        assert_eq!(status, 404);
        if sample(edge, "cdn_node_peer_forwards_total", &[("to", "peer")]).await > before {
            path = candidate;
            break;
        }
    }
    fleet.s3.put(&path[1..], &bytes(BIG, 99));
    let (status, answer) = edge.admin_post(&format!("/purge?path={path}")).await;
    assert!((200..300).contains(&status), "{status} {answer}");
    // A client that takes the head and a little of the body, then stops
    // reading while the owner is killed.
    let mut client = tokio::net::TcpStream::connect(edge.node.http)
        .await
        .unwrap();
    let ask = format!(
        "GET {} HTTP/1.1\r\nHost: cdn.example\r\n\r\n",
        fleet.target(&path)
    );
    client.write_all(ask.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&chunk[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {BIG}\r\n")),
        "{head}"
    );
    fleet.edges[1].node.kill();
    let read_all = async {
        loop {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the connection was left open");
    let body = got.len() - head_end;
    assert!(body < BIG, "a whole body from a dead owner: {body}");
    let expected = bytes(BIG, 99);
    assert!(
        got[head_end..] == expected[..body],
        "bytes changed on the way"
    );
}
