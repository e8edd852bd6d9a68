//! The HTTP/1 hit lane through the real node: memory hits answered before
//! Pingora's session, every other request handed to it on the same
//! connection and the connection taken back; the token checked once
//! whichever path answers; an idle connection closed at a graceful stop.

mod common;

use std::time::Duration;

use common::conn::Conn;
use common::http::{Headers, header, lasting, metric, raw};
use common::token::{good_claims, hs256};
use common::world::{Builder, World};
use common::{bytes, eventually};
use serde_json::json;

const HOT: &str = "/v/hot.bin";
const COLD: &str = "/v/cold.bin";

fn world(hot: &[u8], cold: &[u8]) -> Builder {
    World::builder()
        .object(&HOT[1..], hot)
        .object(&COLD[1..], cold)
        .tap()
        .cache("")
}

/// GETs `target` until memory answers it.
async fn make_hot(w: &World, target: &str) {
    let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
    let before = memory_hits(&w.metrics().await);
    eventually("hits from memory", Duration::from_secs(10), || async move {
        let (status, _, _) = raw(w.node.http, "GET", target, &[]).await;
        assert_eq!(status, 200);
        (memory_hits(&w.metrics().await) > before).then_some(())
    })
    .await;
}

/// One connection: hits the lane answers and requests it hands to
/// Pingora's session (a miss, a range, a conditional), in turn, each
/// answered whole and in order; each counted and logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_is_served_by_the_lane_and_by_pingora_in_turn() {
    let (hot, cold) = (bytes(1024, 1), bytes(3000, 2));
    let w = world(&hot, &cold).start().await;
    make_hot(&w, &w.target(HOT)).await;
    let requests = |m: &str| metric(m, "cdn_node_cache_lookups_total", &[("result", "hit")]);
    let before = w.metrics().await;
    // This connection's student, to find its log lines.
    let token = hs256(&good_claims("carol"));
    let target = |path: &str| format!("{path}?jwt={token}");

    let mut c = Conn::open(w.node.http).await;
    let bad = format!("{HOT}?jwt=x{token}");
    let etag = {
        let (_, h, _) = c.ask("GET", &target(HOT), &[]).await;
        header(&h, "etag").expect("an ETag").to_string()
    };
    // (method, target, extra fields, status, body, cache status)
    type Step<'a> = (
        &'a str,
        String,
        Vec<(&'a str, String)>,
        u16,
        Vec<u8>,
        &'a str,
    );
    let steps: Vec<Step> = vec![
        ("GET", target(HOT), vec![], 200, hot.clone(), "HIT"),
        ("GET", target(COLD), vec![], 200, cold.clone(), "MISS"),
        (
            "GET",
            target(HOT),
            vec![("range", "bytes=10-19".into())],
            206,
            hot[10..20].to_vec(),
            "HIT",
        ),
        ("HEAD", target(HOT), vec![], 200, vec![], "HIT"),
        ("GET", bad.clone(), vec![], 401, vec![], ""),
        (
            "GET",
            target(HOT),
            vec![("if-none-match", etag.clone())],
            304,
            vec![],
            "HIT",
        ),
        ("GET", target(COLD), vec![], 200, cold.clone(), "HIT"),
        (
            "GET",
            target(HOT),
            vec![("connection", "keep-alive".into())],
            200,
            hot.clone(),
            "HIT",
        ),
        // The head in three writes.
        (
            "GET",
            target(HOT),
            vec![("accept", "*/*".into())],
            200,
            hot.clone(),
            "HIT",
        ),
    ];
    for (i, (method, target, extra, status, body, cache)) in steps.iter().enumerate() {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let pieces = if i == steps.len() - 1 { 3 } else { 1 };
        let (got, h, got_body) = c.ask_in(method, target, &extra, pieces).await;
        assert_eq!(got, *status, "step {i}: {method} {target} {extra:?}");
        assert_eq!(header(&h, "connection"), Some("keep-alive"), "step {i}");
        assert!(header(&h, "date").is_some(), "step {i}: no Date");
        if *status == 401 {
            assert!(header(&h, "www-authenticate").is_some(), "step {i}");
            assert!(!got_body.is_empty(), "step {i}: the refusal has a body");
        } else {
            assert!(got_body == *body, "step {i}: body");
            assert_eq!(header(&h, "x-cache"), Some(*cache), "step {i}");
        }
    }
    // The client closes: the node answers and closes too.
    let (status, h, got) = c.ask("GET", &target(HOT), &[("connection", "close")]).await;
    assert_eq!((status, header(&h, "connection")), (200, Some("close")));
    assert!(got == hot);
    assert!(c.closed().await, "the connection stayed open after close");

    // Every request counted and logged once: 11 on the connection.
    let after = w.metrics().await;
    // Hits: the ETag GET, steps 0, 2, 3, 5, 6, 7, 8 and the last one.
    assert_eq!(requests(&after) - requests(&before), 9.0);
    let carol = |log: &[serde_json::Value]| -> Vec<u64> {
        log.iter()
            .filter(|l| l["sub"] == "carol" || l["status"] == 401)
            .map(|l| l["status"].as_u64().unwrap())
            .collect()
    };
    let statuses = eventually("the log lines", Duration::from_secs(10), || async {
        let statuses = carol(&w.node.access_log());
        (statuses.len() >= 11).then_some(statuses)
    })
    .await;
    assert_eq!(
        statuses,
        [200, 200, 200, 206, 200, 401, 304, 200, 200, 200, 200]
    );
    // S3 was asked for the cold object once, and the hot one once.
    assert_eq!(w.tap().origin_requests(), (2, 0));
}

/// The lane checks the token of a request it answers, and of no other: a
/// one-time token opens an object once, whichever path answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_token_is_checked_once_on_either_path() {
    let (hot, cold) = (bytes(1024, 3), bytes(2048, 4));
    let w = world(&hot, &cold)
        .configure(|o| {
            o.extra_auth = "  replay_protection: true\n  replay_cache_entries: 1000\n".into();
        })
        .start()
        .await;
    let mut jti = 0;
    let mut once = || {
        jti += 1;
        let mut claims = good_claims("alice");
        claims["jti"] = json!(format!("view-{jti}"));
        hs256(&claims)
    };
    let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
    eventually("hits from memory", Duration::from_secs(10), || {
        let token = once();
        let w = &w;
        async move {
            assert_eq!(w.status(HOT, &token).await, 200);
            (memory_hits(&w.metrics().await) > 0.0).then_some(())
        }
    })
    .await;
    // A memory hit (the lane), a miss and then a disk hit (Pingora's path).
    for path in [HOT, COLD, COLD] {
        let token = once();
        let mut c = Conn::open(w.node.http).await;
        let target = format!("{path}?jwt={token}");
        assert_eq!(c.ask("GET", &target, &[]).await.0, 200, "{path}: first use");
        assert_eq!(
            c.ask("GET", &target, &[]).await.0,
            401,
            "{path}: second use"
        );
        assert_eq!(
            w.status(path, &token).await,
            401,
            "{path}: on another connection"
        );
    }
}

/// A memory hit larger than the socket takes at once: the lane's header
/// and body go out over several writes, whole and in order, and the
/// connection then serves its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hit_larger_than_the_socket_buffer_is_written_whole() {
    let big = bytes(3 << 20, 41);
    let w = World::builder()
        .object("v/big.bin", &big)
        .object(&HOT[1..], &bytes(1024, 42))
        .tap()
        .cache("  memory_size: 64MiB\n  memory_object_max_size: 4MiB\n")
        .start()
        .await;
    let target = w.target("/v/big.bin");
    make_hot(&w, &target).await;
    let lane = |m: &str| metric(m, "cdn_node_lane_answers_total", &[]);
    let before = lane(&w.metrics().await);
    let mut c = Conn::open(w.node.http).await;
    for _ in 0..2 {
        let (status, h, body) = c.ask("GET", &target, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-length"), Some("3145728"));
        assert!(body == big, "the body differs");
    }
    let (status, _, _) = c.ask("GET", &w.target(HOT), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        lane(&w.metrics().await) - before,
        2.0,
        "the lane answered the large hits"
    );
}

/// An idle kept-alive connection whose last answer was the lane's is
/// closed when the node stops, and the node exits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_at_a_graceful_stop() {
    let (hot, cold) = (bytes(1024, 5), bytes(10, 6));
    let mut w = world(&hot, &cold).start().await;
    make_hot(&w, &w.target(HOT)).await;
    let mut c = Conn::open(w.node.http).await;
    let (status, h, _) = c.ask("GET", &w.target(HOT), &[]).await;
    assert_eq!((status, header(&h, "x-cache")), (200, Some("HIT")));
    w.node.signal("TERM");
    assert!(c.closed().await, "the idle connection was not closed");
    let status = w.node.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}: {}", w.node.stderr());
}

/// The lane's refusal is the one Pingora's path gives: a token refused on
/// a memory hit and on an object memory does not hold answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_the_lane_is_the_refusal_of_pingoras_path() {
    let (hot, cold) = (bytes(1024, 7), bytes(10, 8));
    let w = world(&hot, &cold).start().await;
    make_hot(&w, &w.target(HOT)).await;
    let expired = {
        let mut claims = good_claims("alice");
        claims["exp"] = json!(common::unix_now() - 3600);
        hs256(&claims)
    };
    let answered = |m: &str| metric(m, "cdn_node_lane_answers_total", &[]);
    let before = answered(&w.metrics().await);
    let mut c = Conn::open(w.node.http).await;
    let (lane, lane_h, lane_body) = c.ask("GET", &format!("{HOT}?jwt={expired}"), &[]).await;
    let (path, path_h, path_body) = c.ask("GET", &format!("{COLD}?jwt={expired}"), &[]).await;
    assert_eq!((lane, path), (401, 401));
    let without_date =
        |h: Headers| -> Headers { h.into_iter().filter(|(n, _)| n != "date").collect() };
    assert_eq!(without_date(lane_h), without_date(path_h));
    assert_eq!(lane_body, path_body);
    let m = w.metrics().await;
    let expired = metric(
        &m,
        "cdn_node_auth_rejections_total",
        &[("reason", "expired")],
    );
    assert_eq!(expired, 2.0);
    assert_eq!(
        answered(&m) - before,
        1.0,
        "the lane refused the memory hit only"
    );
}

/// The lane's answers are Pingora's: the same requests, once as the lane
/// takes them and once with a `Content-Length: 0` field (a GET Pingora
/// reads alike, which the lane leaves to it), give the same status,
/// fields and body: a memory hit, its HEAD, a playlist given the token,
/// a refusal, a CORS request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lanes_answers_are_pingoras_answers() {
    let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nseg-1.ts\n#EXTINF:6,\nseg-2.ts\n#EXT-X-ENDLIST\n";
    let (hot, cold) = (bytes(1024, 9), bytes(10, 10));
    let w = world(&hot, &cold)
        .object("v/index.m3u8", playlist)
        .cors(&["https://portal.example"])
        .start()
        .await;
    make_hot(&w, &w.target(HOT)).await;
    make_hot(&w, &w.target("/v/index.m3u8")).await;
    let token = hs256(&good_claims("dave"));
    let expired = {
        let mut claims = good_claims("dave");
        claims["exp"] = json!(common::unix_now() - 3600);
        hs256(&claims)
    };
    let origin = ("origin", "https://portal.example");
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("GET", format!("{HOT}?jwt={token}"), vec![]),
        ("HEAD", format!("{HOT}?jwt={token}"), vec![]),
        ("GET", format!("{HOT}?jwt={token}"), vec![origin]),
        ("GET", format!("{HOT}?jwt={expired}"), vec![origin]),
        ("GET", format!("/v/index.m3u8?jwt={token}"), vec![]),
        ("HEAD", format!("/v/index.m3u8?jwt={token}"), vec![]),
    ];
    let lane = |m: &str| metric(m, "cdn_node_lane_answers_total", &[]);
    let before = lane(&w.metrics().await);
    let mut c = Conn::open(w.node.http).await;
    // Three rounds: later hits of a hot object come from each worker
    // thread's own copy, whose header is written as kept.
    for (method, target, extra) in cases.iter().cycle().take(3 * cases.len()) {
        let (status, lane_h, lane_body) = c.ask(method, target, extra).await;
        let mut handed = extra.clone();
        handed.push(("content-length", "0"));
        let (p_status, path_h, path_body) = c.ask(method, target, &handed).await;
        assert_eq!(status, p_status, "{method} {target} {extra:?}");
        assert_eq!(
            lasting(lane_h),
            lasting(path_h),
            "{method} {target} {extra:?}"
        );
        assert_eq!(lane_body, path_body, "{method} {target} {extra:?}");
    }
    // The playlist was given the token.
    let (_, _, body) = c
        .ask("GET", &format!("/v/index.m3u8?jwt={token}"), &[])
        .await;
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(&format!("seg-1.ts?jwt={token}")), "{text}");
    // The lane answered each case of each round once, and the last GET.
    let answered = lane(&w.metrics().await) - before;
    assert_eq!(answered, 3.0 * cases.len() as f64 + 1.0);
}

/// In a PoP the lane answers the keys the node owns, its copies of other
/// nodes' answers, and the forwards to the owner of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pop_the_lane_answers_own_keys_copies_and_forwards() {
    use common::fleet::{Fleet, Plan};
    // Enough keys that each node owns some (the ring decides which).
    let objects: Vec<(String, Vec<u8>)> = (0..32)
        .map(|i| (format!("v/o-{i}.bin"), bytes(1000, 60 + i)))
        .collect();
    let plan = Plan {
        edges: 2,
        shields: 0,
        cache_extra: "  status_header: x-cache\n".into(),
        cluster_extra: "  health_check_interval_ms: 1000\n".into(),
        ..Plan::default()
    };
    let fleet = Fleet::start(&objects, plan).await;
    let edge = &fleet.edges[0];
    let sample = |name: &'static str, labels: &'static [(&'static str, &'static str)]| async move {
        metric(&edge.node.metrics().await, name, labels)
    };
    eventually(
        "both nodes in the ring",
        Duration::from_secs(10),
        || async {
            let healthy = sample("cdn_node_ring_healthy_members", &[("ring", "pop")]).await;
            (healthy == 2.0).then_some(())
        },
    )
    .await;
    let (mut own, mut others) = (0, 0);
    for (key, body) in &objects {
        if own >= 2 && others >= 2 {
            break;
        }
        let target = fleet.target(&format!("/{key}"));
        let forwards = sample("cdn_node_peer_forwards_total", &[("to", "peer")]).await;
        let lane = sample("cdn_node_lane_answers_total", &[]).await;
        let (status, _, got) = raw(edge.node.http, "GET", &target, &[]).await;
        assert_eq!(status, 200);
        assert!(got == *body);
        let forwarded = sample("cdn_node_peer_forwards_total", &[("to", "peer")]).await > forwards;
        if forwarded {
            // Forwarded by the lane, until this node keeps a copy of the
            // owner's answer, then answered from the copy: all in the lane.
            others += 1;
            let mut copies = 0.0;
            for _ in 0..5 {
                let (status, h, got) = raw(edge.node.http, "GET", &target, &[]).await;
                assert!(status == 200 && got == *body, "{key}");
                if header(&h, "x-cache") == Some("HIT-COPY") {
                    copies += 1.0;
                }
            }
            assert!(
                copies > 0.0 && copies < 5.0,
                "{key}: {copies} answers from a copy"
            );
            let answered = sample("cdn_node_lane_answers_total", &[]).await - lane;
            assert_eq!(answered, 6.0, "{key}: an answer not given by the lane");
            let forwarded = sample("cdn_node_peer_forwards_total", &[("to", "peer")]).await;
            assert_eq!(forwarded - forwards, 6.0 - copies, "{key}");
        } else {
            own += 1;
            let target = &target;
            eventually(
                "the lane to answer",
                Duration::from_secs(10),
                || async move {
                    let (status, _, got) = raw(edge.node.http, "GET", target, &[]).await;
                    assert!(status == 200 && got == *body, "{key}");
                    let answered = sample("cdn_node_lane_answers_total", &[]).await - lane;
                    (answered > 0.0).then_some(())
                },
            )
            .await;
        }
    }
    assert!(own >= 2 && others >= 2, "own {own}, others {others}");
}
