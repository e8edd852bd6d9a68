//! The hit lane on HTTP/2 through the real node and curl over HTTPS: a
//! stream whose request memory answers is answered before the proxy's
//! phases, with the answer the proxy gives the same request; every other
//! stream goes to the proxy.

mod common;

use std::time::Duration;

use common::curl::{assert_same_answer, in_lane_and_by_proxy};
use common::http::{metric, raw};
use common::token::{good_claims, hs256};
use common::world::World;
use common::{bytes, eventually};
use serde_json::json;

const HOT: &str = "/v/hot.bin";
const PLAYLIST: &str = "/v/index.m3u8";

/// Memory hits, their HEADs, CORS, a refusal and a playlist given the
/// token, each asked over HTTP/2 twice: as it is (the lane answers) and
/// with `content-length: 0` (the lane hands such a request to the proxy).
/// The two answers are the same, field for field and byte for byte, and
/// the lane answered exactly the first of each pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_the_lanes_answers_are_the_proxys_answers() {
    let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nseg-1.ts\n#EXTINF:6,\nseg-2.ts\n#EXT-X-ENDLIST\n";
    let hot = bytes(1024, 21);
    let w = World::builder()
        .object(&HOT[1..], &hot)
        .object(&PLAYLIST[1..], playlist)
        .tap()
        .cache("")
        .cors(&["https://portal.example"])
        .tls()
        .start()
        .await;
    for target in [HOT, PLAYLIST] {
        let target = w.target(target);
        let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
        let before = memory_hits(&w.metrics().await);
        let (w, target) = (&w, &target);
        eventually("hits from memory", Duration::from_secs(10), || async move {
            let (status, _, _) = raw(w.node.http, "GET", target, &[]).await;
            assert_eq!(status, 200);
            (memory_hits(&w.metrics().await) > before).then_some(())
        })
        .await;
    }
    let https = w.node.https.expect("an HTTPS listener");
    let ca = w.tls().served.cert.clone();
    let dir = w.tls().certs.dir().to_path_buf();
    let token = hs256(&good_claims("erin"));
    let expired = {
        let mut claims = good_claims("erin");
        claims["exp"] = json!(common::unix_now() - 3600);
        hs256(&claims)
    };
    let url = |target: String| format!("https://localhost:{}{target}", https.port());
    let origin = ("origin", "https://portal.example");
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("GET", url(format!("{HOT}?jwt={token}")), vec![]),
        ("HEAD", url(format!("{HOT}?jwt={token}")), vec![]),
        ("GET", url(format!("{HOT}?jwt={token}")), vec![origin]),
        ("GET", url(format!("{HOT}?jwt={expired}")), vec![origin]),
        ("GET", url(format!("{PLAYLIST}?jwt={token}")), vec![]),
        ("HEAD", url(format!("{PLAYLIST}?jwt={token}")), vec![]),
    ];
    let lane = |m: &str| metric(m, "cdn_node_lane_answers_total", &[]);
    let before = lane(&w.metrics().await);
    let answers = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|(method, url, extra)| {
                let (in_lane, by_proxy) = in_lane_and_by_proxy(&ca, &dir, method, &url, &extra);
                (format!("{method} {url} {extra:?}"), in_lane, by_proxy)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let pairs = answers.len();
    for (case, in_lane, by_proxy) in answers {
        assert_same_answer(&case, &in_lane, &by_proxy);
        if case.starts_with("GET") && case.contains(PLAYLIST) {
            let text = String::from_utf8(in_lane.body).unwrap();
            assert!(text.contains(&format!("seg-1.ts?jwt={token}")), "{text}");
        }
    }
    let answered = lane(&w.metrics().await) - before;
    assert_eq!(answered, pairs as f64, "the lane answered one of each pair");
}
