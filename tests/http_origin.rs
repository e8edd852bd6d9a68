//! `origin.kind: http`: a plain web server behind the node. Requests are
//! not signed; the client's end-to-end fields reach it, its hop-by-hop
//! fields and whatever carried the token do not; its `Cache-Control` and
//! `Age` decide what is stored and for how long.

mod common;

use std::net::SocketAddr;

use common::fault_origin::FaultOrigin;
use common::fleet::{Member, cluster_yaml, free_port_on, member_options};
use common::http::{header, raw};
use common::node::Node;
use common::token::{good_claims, hs256};
use common::world::World;

const VIDEO: &[u8] = b"a plain web server's video bytes";

/// Whole objects: slice fetches are shared by every client and carry none
/// of one client's fields (docs/cluster.md).
async fn world(origin: &FaultOrigin) -> World {
    world_with(origin, "").await
}

/// The same, with `origin_extra` lines in the `origin:` section.
async fn world_with(origin: &FaultOrigin, origin_extra: &str) -> World {
    World::builder()
        .origin(origin.port)
        .cache("  status_header: x-cache\n  slice_threshold: 0\n")
        .configure(|o| {
            o.http_origin = true;
            o.origin_extra = origin_extra.into();
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_fields_reach_a_plain_origin_and_the_token_does_not() {
    let origin = FaultOrigin::start().await;
    origin.put_with("v/a.mp4", VIDEO, Some("max-age=60"));
    let w = world(&origin).await;
    // The token comes in a cookie, beside one of the site's own.
    let cookie = format!("theme=dark; jwt={}", w.token);
    let (status, headers, body) = raw(
        w.node.http,
        "GET",
        "/v/a.mp4",
        &[
            ("accept-language", "fr"),
            ("user-agent", "hls.js"),
            ("cookie", &cookie),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("accept-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!((status, body.as_slice()), (200, VIDEO));
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));
    let heads = origin.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /v/a.mp4 http/1.1\r\n"), "{head}");
    for present in [
        "accept-language: fr",
        "user-agent: hls.js",
        "cookie: theme=dark\r\n",
        "x-forwarded-for: 127.0.0.1\r\n",
    ] {
        assert!(head.contains(present), "{present} missing in {head}");
    }
    for absent in [
        "jwt=",
        "x-hop",
        "authorization",
        "x-amz-",
        "accept-encoding",
    ] {
        assert!(!head.contains(absent), "{absent} in {head}");
    }
    // Stored for the origin's max-age: a second student is a hit.
    let (status, headers, body) = raw(w.node.http, "GET", &w.target("/v/a.mp4"), &[]).await;
    assert_eq!((status, body.as_slice()), (200, VIDEO));
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plain_origin_forbids_is_not_stored() {
    let origin = FaultOrigin::start().await;
    origin.put_with("v/private.mp4", VIDEO, Some("private, max-age=600"));
    origin.put_with("v/no-store.mp4", VIDEO, Some("no-store"));
    origin.put_with("v/fresh.mp4", VIDEO, Some("public, max-age=600"));
    let w = world(&origin).await;
    for (path, second) in [
        ("/v/private.mp4", "MISS"),
        ("/v/no-store.mp4", "MISS"),
        ("/v/fresh.mp4", "HIT"),
    ] {
        for want in ["MISS", second] {
            let (status, headers, body) = raw(w.node.http, "GET", &w.target(path), &[]).await;
            assert_eq!((status, body.as_slice()), (200, VIDEO), "{path}");
            assert_eq!(header(&headers, "x-cache"), Some(want), "{path}");
        }
    }
    assert_eq!(origin.requests(), 5);
}

/// An origin gives browsers one lifetime and the CDN another: the node
/// stores for `CDN-Cache-Control` (RFC 9213) and passes `Cache-Control` on
/// to the browser as the origin wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_cache_control_governs_the_node_and_cache_control_the_browser() {
    let origin = FaultOrigin::start().await;
    let fields = [
        ("Cache-Control", "no-store"),
        ("CDN-Cache-Control", "max-age=600"),
    ];
    origin.put_with_fields("v/a.mp4", VIDEO, &fields);
    let w = world(&origin).await;
    for want in ["MISS", "HIT"] {
        let (status, headers, body) = raw(w.node.http, "GET", &w.target("/v/a.mp4"), &[]).await;
        assert_eq!((status, body.as_slice()), (200, VIDEO));
        assert_eq!(header(&headers, "x-cache"), Some(want));
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        assert_eq!(header(&headers, "cdn-cache-control"), Some("max-age=600"));
    }
    assert_eq!(origin.requests(), 1);
}

/// `origin.methods` names what besides GET and HEAD reaches the origin:
/// those methods pass uncached, a non-error answer to an unsafe one drops
/// what is stored for its target, and any other method is answered 405
/// with an `Allow` that names what would have been served or passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_methods_pass_invalidate_and_others_get_an_allow_naming_them() {
    let origin = FaultOrigin::start().await;
    origin.put_with("v/a.mp4", VIDEO, Some("max-age=60"));
    let w = world_with(&origin, "  methods: [PROPFIND, POST]\n").await;
    let target = w.target("/v/a.mp4");
    let get = || raw(w.node.http, "GET", &target, &[]);
    for want in ["MISS", "HIT"] {
        let (status, headers, _) = get().await;
        assert_eq!((status, header(&headers, "x-cache")), (200, Some(want)));
    }
    let empty = [("content-length", "0")];
    let (status, _, _) = raw(w.node.http, "POST", &target, &empty).await;
    assert_eq!(status, 200);
    let last = origin.heads().last().cloned().unwrap_or_default();
    assert!(last.starts_with("POST /v/a.mp4 "), "{last}");
    let (status, headers, _) = get().await;
    assert_eq!(
        (status, header(&headers, "x-cache")),
        (200, Some("MISS")),
        "after the POST"
    );
    let before = origin.requests();
    // (CONNECT Pingora refuses itself, with a bare 405, before any hook.)
    for method in ["PUT", "DELETE", "TRACE"] {
        let (status, headers, body) = raw(w.node.http, method, &target, &empty).await;
        assert_eq!(status, 405, "{method}");
        let allow = header(&headers, "allow");
        assert_eq!(allow, Some("GET, HEAD, POST, PROPFIND"), "{method}");
        assert_eq!(body, b"method not allowed\n", "{method}");
    }
    assert_eq!(
        origin.requests(),
        before,
        "no refused method reaches the origin"
    );
}

/// A PoP of two nodes on 127.0.0.1 and 127.0.0.2 before the plain origin,
/// `/pub/` public, with `extra` lines after their `cluster:` section and
/// `auth` lines in their `auth:` section.
async fn pop(origin: &FaultOrigin, extra: &str, auth: &str) -> Vec<Member> {
    let peers: Vec<SocketAddr> = (1..=2u8)
        .map(|i| SocketAddr::from(([127, 0, 0, i], free_port_on([127, 0, 0, i]))))
        .collect();
    let mut nodes = Vec::new();
    for me in &peers {
        let cache = tempfile::tempdir().expect("tempdir");
        let cluster = cluster_yaml(*me, &peers, "  health_check_interval_ms: 200\n") + extra;
        let cache_extra = "  status_header: x-cache\n  slice_threshold: 0\n";
        let mut opts = member_options(
            origin.port,
            cache.path(),
            cache_extra,
            cluster,
            String::new(),
        );
        opts.http_origin = true;
        opts.public_prefixes = vec!["/pub/".into()];
        opts.extra_auth = auth.into();
        nodes.push(Member {
            node: Node::start(opts).await,
            peer: *me,
            _cache: cache,
        });
    }
    for member in &nodes {
        member.node.wait_rings(peers.len(), 0).await;
    }
    nodes
}

/// A PoP of two nodes before one plain origin whose answer varies on
/// `Accept-Language`: whichever node a client reaches, it gets the variant
/// its own fields select, and the PoP fetches each variant once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_before_a_plain_origin_serves_the_variant_each_client_asks_for() {
    let origin = FaultOrigin::start().await;
    let (fr, de) = (&b"bonjour"[..], &b"hallo"[..]);
    let bodies = [("fr", fr), ("de", de)];
    origin.put_varying(
        "v/a.mp4",
        VIDEO,
        "accept-language",
        &bodies,
        Some("max-age=60"),
    );
    let nodes = pop(&origin, "", "").await;
    let token = hs256(&good_claims("alice"));
    // The token in a cookie beside one of the site's own, to see which of
    // them the hop and the origin get.
    let cookie = format!("theme=dark; jwt={token}");
    for round in ["MISS", "HIT"] {
        for (lang, want) in [("fr", fr), ("de", de), ("", VIDEO)] {
            for member in &nodes {
                let mut fields = vec![("cookie", cookie.as_str())];
                if !lang.is_empty() {
                    fields.push(("accept-language", lang));
                }
                let (status, headers, body) =
                    raw(member.node.http, "GET", "/v/a.mp4", &fields).await;
                assert_eq!(status, 200, "{lang:?} through {}", member.peer);
                assert_eq!(body, want, "{lang:?} through {}", member.peer);
                // The owner's cache status, whichever node answered.
                let status = header(&headers, "x-cache");
                if round == "HIT" {
                    assert_eq!(status, Some("HIT"), "{lang:?} through {}", member.peer);
                }
            }
        }
    }
    // One origin request per variant in the whole PoP, with the client's
    // field, the site's cookie, and neither the token nor the hop marker.
    let heads = origin.heads();
    assert_eq!(heads.len(), 3, "{heads:?}");
    for head in &heads {
        let head = head.to_ascii_lowercase();
        assert!(head.contains("cookie: theme=dark\r\n"), "{head}");
        // The client first in the chain, whichever node it reached.
        assert!(head.contains("x-forwarded-for: 127.0.0.1"), "{head}");
        for absent in [token.to_ascii_lowercase().as_str(), "cdn-node-hop", "jwt="] {
            assert!(!head.contains(absent), "{absent} in {head}");
        }
    }
    for lang in ["fr", "de"] {
        let with = |h: &&String| {
            h.to_ascii_lowercase()
                .contains(&format!("accept-language: {lang}\r\n"))
        };
        assert_eq!(heads.iter().filter(with).count(), 1, "{lang}: {heads:?}");
    }
}

/// A request head the node a client reached lets in is not refused by the
/// key's owner for what the hop adds: the marker and `CDN-Loop`, and a
/// target written in canonical form (`!` becomes `%21`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_takes_every_head_the_edge_let_in() {
    const TOTAL: usize = 2048;
    const LINE: usize = 1024;
    let origin = FaultOrigin::start().await;
    let limits =
        format!("limits:\n  max_header_bytes: {TOTAL}\n  max_header_field_bytes: {LINE}\n");
    let nodes = pop(&origin, &limits, "").await;
    // A request line of exactly LINE bytes whose target triples in length.
    let bangs = "!".repeat(LINE - "GET /pub/ HTTP/1.1".len());
    origin.put_with(
        &format!("pub/{}", "%21".repeat(bangs.len())),
        VIDEO,
        Some("max-age=60"),
    );
    origin.put_with("pub/a.mp4", VIDEO, Some("max-age=60"));
    // A whole head of TOTAL bytes: what `raw` writes (request line, `Host`,
    // `Connection`, the blank line) and one filler field.
    let head_without_filler = |addr: SocketAddr| {
        let written =
            format!("GET /pub/a.mp4 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        written.len()
    };
    for member in &nodes {
        let (status, _, body) = raw(member.node.http, "GET", &format!("/pub/{bangs}"), &[]).await;
        assert_eq!(
            (status, body.as_slice()),
            (200, VIDEO),
            "long target through {}",
            member.peer
        );
    }
    for member in &nodes {
        let addr = member.node.http;
        for (extra, want) in [(0, 200), (1, 431)] {
            let fields = fillers(TOTAL - head_without_filler(addr) + extra);
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let (status, _, _) = raw(addr, "GET", "/pub/a.mp4", &fields).await;
            // The whole head at the limit passes; a byte more is the
            // edge's to refuse.
            assert_eq!(status, want, "{extra} byte(s) over through {}", member.peer);
        }
    }
}

/// Three fields whose lines (line ends included) take exactly `room` bytes.
fn fillers(room: usize) -> Vec<(String, String)> {
    let lines = [room / 3, room / 3, room - 2 * (room / 3)];
    lines
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let name = format!("x-filler-{i}");
            let value = "x".repeat(len - name.len() - ": \r\n".len());
            (name, value)
        })
        .collect()
}

/// A hop before a plain origin carries the client's own `Authorization` in
/// a scheme tokens do not come in (the node reads `Bearer` tokens from it,
/// by default; `Basic` is the origin's): the answer is kept neither by the owner
/// nor, as a copy of a hot key, by the node that forwarded it, unless the
/// origin says a shared cache may keep it (RFC 9111 3.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_clients_credentials_is_kept_in_the_pop_only_when_public() {
    let origin = FaultOrigin::start().await;
    origin.put_with("pub/mine.mp4", VIDEO, Some("max-age=60"));
    origin.put_with("pub/shared.mp4", VIDEO, Some("public, max-age=60"));
    let nodes = pop(&origin, "", "").await;
    let basic = [("authorization", "Basic c3R1ZGVudDpwdw==")];
    // Enough forwards of one key for the forwarding node to copy it.
    for path in ["/pub/mine.mp4", "/pub/shared.mp4"] {
        for member in &nodes {
            for _ in 0..4 {
                let (status, _, body) = raw(member.node.http, "GET", path, &basic).await;
                assert_eq!(
                    (status, body.as_slice()),
                    (200, VIDEO),
                    "{path} through {}",
                    member.peer
                );
            }
        }
    }
    let heads = origin.heads();
    let asked = |path: &str| {
        heads
            .iter()
            .filter(|h| h.starts_with(&format!("GET {path} ")))
            .count()
    };
    assert_eq!(
        asked("/pub/mine.mp4"),
        8,
        "every request for the private answer: {heads:?}"
    );
    assert_eq!(
        asked("/pub/shared.mp4"),
        1,
        "the public one once in the PoP: {heads:?}"
    );
    for head in &heads {
        let credentials = "\r\nauthorization: Basic c3R1ZGVudDpwdw==\r\n";
        assert!(head.contains(credentials), "{head}");
    }
}
