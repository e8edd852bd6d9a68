//! The whole request path with real parts: the node binary, s3s-fs checking
//! SigV4 as the origin, and a recording tap between them.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::http::{header, metric, parse_answer, raw};
use common::node::Options;
use common::tap::Mode;
use common::token::{good_claims, hs256, sign, unsigned, with_raw_header};
use common::world::World;
use common::{bytes, unix_now};
use jsonwebtoken::Algorithm;
use serde_json::json;

const VIDEO: &str = "courses/101/lecture-01.mp4";

/// The one object of these worlds.
fn video() -> Vec<u8> {
    bytes(1024 * 1024 + 17, 7)
}

/// `VIDEO` in the bucket, a tap, and the node configured by `configure`.
async fn world(configure: impl FnOnce(&mut Options)) -> World {
    World::builder()
        .object(VIDEO, &video())
        .tap()
        .configure(configure)
        .start()
        .await
}

/// (case, token, extra header, status, reason)
type Case = (
    &'static str,
    Option<String>,
    Option<(&'static str, String)>,
    u16,
    &'static str,
);

fn video_target(token: &str) -> String {
    format!("/{VIDEO}?jwt={token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_gets_the_exact_object_from_every_source() {
    let w = world(|_| {}).await;
    let token = hs256(&good_claims("alice"));
    let client = reqwest::Client::new();
    let plain = format!("/{VIDEO}");
    let requests = [
        client.get(w.node.url(&format!("/{VIDEO}?jwt={token}"))),
        client.get(w.node.url(&format!("/{VIDEO}?token={token}"))),
        client
            .get(w.node.url(&plain))
            .header("authorization", format!("Bearer {token}")),
        client
            .get(w.node.url(&plain))
            .header("cookie", format!("theme=dark; jwt={token}")),
        // The same token twice is not a conflict.
        client
            .get(w.node.url(&format!("/{VIDEO}?jwt={token}")))
            .header("authorization", format!("Bearer {token}")),
    ];
    for (i, req) in requests.into_iter().enumerate() {
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(
            resp.headers()["content-length"],
            video().len().to_string().as_str()
        );
        let body = resp.bytes().await.expect("body");
        assert!(
            body[..] == video()[..],
            "request {i}: body differs from the stored object"
        );
    }
    assert_eq!(w.tap().requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_spaces_and_unicode_are_signed_right() {
    let w = world(|_| {}).await;
    let body = bytes(4000, 3);
    w.s3().put("courses/101/intro video ü+~.mp4", &body);
    let token = hs256(&good_claims("alice"));
    let target = format!("/courses/101/intro%20video%20%C3%BC%2B~.mp4?jwt={token}");
    let (status, _, got) = raw(w.node.http, "GET", &target, &[]).await;
    assert_eq!(status, 200, "{}", w.node.stderr());
    assert!(got == body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_and_counted() {
    // The "too large" token (about 12 KiB, in the query) must reach the
    // token gate: request lines up to 16 KiB are let through.
    let w = world(|o| o.extra_yaml = "limits:\n  max_header_field_bytes: 16KiB\n".into()).await;
    let now = unix_now();
    let good = good_claims("alice");
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let mut padded = good.clone();
    padded["pad"] = json!("x".repeat(9000));
    let other = hs256(&with("sub", json!("bob")));
    let cases: Vec<Case> = vec![
        ("missing", None, None, 401, "missing"),
        ("garbage", Some("abc.def".into()), None, 401, "malformed"),
        (
            "bad signature",
            Some(sign(
                Algorithm::HS256,
                Some("main"),
                &good,
                b"another-secret-that-is-long-enough-000",
            )),
            None,
            401,
            "bad_signature",
        ),
        (
            "expired",
            Some(hs256(&with("exp", json!(now - 100)))),
            None,
            401,
            "expired",
        ),
        (
            "not yet valid",
            Some(hs256(&with("nbf", json!(now + 1000)))),
            None,
            401,
            "not_yet_valid",
        ),
        (
            "no exp",
            Some(hs256(&{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            })),
            None,
            401,
            "malformed",
        ),
        (
            "wrong algorithm",
            Some(sign(
                Algorithm::HS512,
                Some("main"),
                &good,
                common::node::HMAC_SECRET.as_bytes(),
            )),
            None,
            401,
            "wrong_algorithm",
        ),
        (
            "unknown kid",
            Some(sign(
                Algorithm::HS256,
                Some("../../etc/passwd"),
                &good,
                common::node::HMAC_SECRET.as_bytes(),
            )),
            None,
            401,
            "unknown_key",
        ),
        (
            "wrong issuer",
            Some(hs256(&with("iss", json!("https://evil.example")))),
            None,
            401,
            "wrong_issuer",
        ),
        (
            "issuer of wrong type",
            Some(hs256(&with("iss", json!(42)))),
            None,
            401,
            "malformed",
        ),
        (
            "wrong audience",
            Some(hs256(&with("aud", json!("someone-else")))),
            None,
            401,
            "wrong_audience",
        ),
        (
            "crit header",
            Some(with_raw_header(
                &json!({"alg": "HS256", "kid": "main", "crit": ["exp"]}),
                &good,
            )),
            None,
            401,
            "crit",
        ),
        ("too large", Some(hs256(&padded)), None, 401, "too_large"),
        (
            "two tokens",
            Some(hs256(&good)),
            Some(("authorization", format!("Bearer {other}"))),
            400,
            "conflict",
        ),
    ];
    let before = w.node.metrics().await;
    for (case, token, extra, status, reason) in &cases {
        let target = match token {
            Some(t) => video_target(t),
            None => format!("/{VIDEO}"),
        };
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (got, headers, body) = raw(w.node.http, "GET", &target, &extra).await;
        assert_eq!(got, *status, "{case}");
        assert_eq!(
            header(&headers, "cache-control"),
            Some("no-store"),
            "{case}"
        );
        if *status == 401 {
            assert_eq!(
                header(&headers, "www-authenticate"),
                Some("Bearer error=\"invalid_token\""),
                "{case}"
            );
            assert_eq!(body, b"a valid token is required\n", "{case}");
        }
        let after = w.node.metrics().await;
        let labels = [("reason", *reason)];
        let moved = metric(&after, "cdn_node_auth_rejections_total", &labels)
            - metric(&before, "cdn_node_auth_rejections_total", &labels);
        assert!(
            moved >= 1.0,
            "{case}: auth_rejections{{reason={reason}}} did not move"
        );
    }
    // Every case counted exactly once, under its own reason.
    let after = w.node.metrics().await;
    let mut expected = std::collections::BTreeMap::new();
    for (_, _, _, _, reason) in &cases {
        *expected.entry(*reason).or_insert(0.0) += 1.0;
    }
    for (reason, n) in expected {
        let labels = [("reason", reason)];
        let moved = metric(&after, "cdn_node_auth_rejections_total", &labels)
            - metric(&before, "cdn_node_auth_rejections_total", &labels);
        assert_eq!(moved, n, "auth_rejections{{reason={reason}}}");
    }
    // `alg: none` in any spelling never opens anything.
    for spelling in ["none", "None", "NONE", "nOnE"] {
        let (status, _, _) = raw(
            w.node.http,
            "GET",
            &video_target(&unsigned(spelling, &good)),
            &[],
        )
        .await;
        assert_eq!(status, 401, "alg {spelling}");
    }
    assert_eq!(
        w.tap().requests(),
        0,
        "a refused request reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_methods_never_reach_the_origin() {
    let w = world(|_| {}).await;
    let token = hs256(&good_claims("alice"));
    const BAD: &[&str] = &[
        "/courses/../secret.mp4",
        "/courses/101/./lecture-01.mp4",
        "/courses/%2e%2e/secret.mp4",
        "/courses/%2E./secret.mp4",
        "/courses%2f101/lecture-01.mp4",
        "/courses%2F101/lecture-01.mp4",
        "/courses%5c101/lecture-01.mp4",
        "//courses/101/lecture-01.mp4",
        "/courses//101/lecture-01.mp4",
        "/courses/101/lecture-01.mp4%00",
        "/courses/101/%0alecture-01.mp4",
        "/courses/101/lecture%zz.mp4",
    ];
    for path in BAD {
        let target = format!("{path}?jwt={token}");
        let (status, _, body) = raw(w.node.http, "GET", &target, &[]).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body, b"bad request\n", "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let (status, headers, _) = raw(
            w.node.http,
            method,
            &video_target(&token),
            &[("content-length", "0")],
        )
        .await;
        assert_eq!(status, 405, "{method}");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
    }
    // A folder would be a bucket listing at S3.
    for path in ["/", "/courses/101/"] {
        let (status, _, _) = raw(w.node.http, "GET", &format!("{path}?jwt={token}"), &[]).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(w.tap().requests(), 0);
}

/// RFC 9112 3.2: an HTTP/1.1 request without its `Host`, or with one that
/// is not `host[:port]`, is 400 (as nginx and Varnish answer it), whichever
/// path the node would have taken; HTTP/1.0 may go without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_its_host_is_refused() {
    let w = world(|_| {}).await;
    let token = hs256(&good_claims("alice"));
    let target = video_target(&token);
    let cases: &[(&str, &str, u16)] = &[
        ("HTTP/1.1", "", 400),
        // A body framing the hit lane leaves to Pingora's path.
        ("HTTP/1.1", "Content-Length: 0\r\n", 400),
        ("HTTP/1.1", "Host: a b\r\n", 400),
        ("HTTP/1.1", "Host: cdn.example/v\r\n", 400),
        ("HTTP/1.1", "Host:\r\n", 400),
        ("HTTP/1.0", "", 200),
        ("HTTP/1.1", "Host: cdn.example:8080\r\n", 200),
    ];
    for (version, fields, want) in cases {
        let head = format!("GET {target} {version}\r\n{fields}Connection: close\r\n\r\n");
        let mut s = tokio::net::TcpStream::connect(w.node.http).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        let (status, _, body) = parse_answer(&answer, false).unwrap();
        assert_eq!(status, *want, "{version} {fields:?}");
        if *want == 400 {
            assert_eq!(body, b"bad request\n", "{version} {fields:?}");
            // Refused before anything reached the origin (the answered
            // ones come last).
            assert_eq!(w.tap().requests(), 0, "{version} {fields:?}");
        }
    }
    let m = w.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_request_rejections_total",
            &[("reason", "host")]
        ),
        5.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_sees_no_token_and_no_client_headers() {
    let w = world(|o| o.forward_query = vec!["partNumber".into()]).await;
    let token = hs256(&good_claims("alice"));
    let target =
        format!("/{VIDEO}?utm=1&response-content-type=text/html&jwt={token}&X-Amz-Expires=5");
    let (status, headers, body) = raw(
        w.node.http,
        "GET",
        &target,
        &[
            ("cookie", &format!("jwt={token}; session=abc")),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-original-url", "/admin"),
            ("x-amz-security-token", "client-supplied"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body == video());
    assert!(
        header(&headers, "x-amz-request-id").is_none(),
        "S3 bookkeeping leaked"
    );
    // An allowed parameter is forwarded, and signed: S3 checks the signature
    // over the query too.
    let (status, _, _) = raw(
        w.node.http,
        "GET",
        &format!("/{VIDEO}?partNumber=1&jwt={token}"),
        &[],
    )
    .await;
    assert_eq!(
        status, 200,
        "partNumber=1 reaches S3 with a valid signature"
    );

    let heads = w.tap().heads();
    assert_eq!(heads.len(), 2);
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(!head.contains(&token), "token reached the origin:\n{head}");
        for needle in [
            "jwt",
            "cookie",
            "x-forwarded",
            "x-original-url",
            "response-content-type",
            "utm",
            "client-supplied",
            "x-amz-expires",
        ] {
            assert!(
                !lower.contains(needle),
                "{needle} reached the origin:\n{head}"
            );
        }
        assert!(
            lower.contains("authorization: aws4-hmac-sha256 "),
            "unsigned:\n{head}"
        );
    }
    assert!(
        heads[0].starts_with(&format!("GET /videos/{VIDEO} HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].starts_with(&format!("GET /videos/{VIDEO}?partNumber=1 HTTP/1.1\r\n")),
        "{}",
        heads[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_with_headers_only() {
    let w = world(|_| {}).await;
    let token = hs256(&good_claims("alice"));
    let (status, headers, body) = raw(w.node.http, "HEAD", &video_target(&token), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some(video().len().to_string().as_str())
    );
    assert!(body.is_empty());
    assert!(w.tap().heads()[0].starts_with("HEAD "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_404_and_bad_credentials_are_502() {
    let w = world(|o| o.secret_key = "not-the-secret".into()).await;
    let token = hs256(&good_claims("alice"));
    let (status, headers, body) = raw(w.node.http, "GET", &video_target(&token), &[]).await;
    assert_eq!(status, 502);
    assert_eq!(body, b"bad gateway\n");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let metrics = w.node.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "cdn_node_origin_errors_total",
            &[("kind", "s3_denied")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "cdn_node_origin_requests_total",
            &[("status_class", "4xx")]
        ),
        1.0
    );
    let log = common::eventually("the access log line", Duration::from_secs(5), || {
        let lines = w.node.access_log();
        async move { lines.into_iter().find(|l| l["status"] == 502) }
    })
    .await;
    assert_eq!(log["s3_code"], "SignatureDoesNotMatch");
    assert_eq!(log["origin_status"], 403);

    let good = world(|_| {}).await;
    let (status, _, body) = raw(
        good.node.http,
        "GET",
        &format!("/courses/101/nope.mp4?jwt={token}"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body, b"not found\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_down_is_502_and_a_silent_origin_is_504() {
    let token = hs256(&good_claims("alice"));
    // Nothing listens on the origin port.
    let down = World::builder().origin_down().start().await;
    let (status, _, body) = raw(down.node.http, "GET", &video_target(&token), &[]).await;
    assert_eq!(status, 502);
    assert_eq!(body, b"bad gateway\n");
    let m = down.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_origin_errors_total", &[("kind", "connect")]),
        1.0
    );
    drop(down);

    let w = world(|o| o.read_timeout_ms = 300).await;
    w.tap().set_mode(Mode::Stall);
    let (status, _, body) = raw(w.node.http, "GET", &video_target(&token), &[]).await;
    assert_eq!(status, 504);
    assert_eq!(body, b"gateway timeout\n");
    let m = w.node.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_origin_errors_total", &[("kind", "timeout")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_prefixes_need_no_token() {
    let w = world(|o| o.public_prefixes = vec!["/public/".into()]).await;
    w.s3().put("public/trailer.mp4", b"trailer");
    let (status, _, body) = raw(w.node.http, "GET", "/public/trailer.mp4", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"trailer");
    let (status, _, _) = raw(w.node.http, "GET", &format!("/{VIDEO}"), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_line_per_request_with_the_token_redacted() {
    let w = world(|_| {}).await;
    let token = hs256(&good_claims("alice"));
    let (status, _, _) = raw(
        w.node.http,
        "GET",
        &format!("/{VIDEO}?a=1&jwt={token}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let forged = sign(
        Algorithm::HS256,
        Some("main"),
        &good_claims("mallory"),
        b"another-secret-that-is-long-enough-000",
    );
    let (status, _, _) = raw(w.node.http, "GET", &format!("/{VIDEO}?token={forged}"), &[]).await;
    assert_eq!(status, 401);
    let lines = common::eventually("two access log lines", Duration::from_secs(5), || {
        let lines = w.node.access_log();
        async move { (lines.len() >= 2).then_some(lines) }
    })
    .await;
    assert_eq!(lines.len(), 2);
    let text = std::fs::read_to_string(w.node.access_log_path()).unwrap();
    assert!(!text.contains(&token), "token in the access log");
    let ok = &lines[0];
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["sub"], "alice");
    assert_eq!(ok["auth"], "ok");
    assert_eq!(ok["origin_status"], 200);
    assert_eq!(ok["bytes"], video().len() as u64);
    assert!(
        ok["path"]
            .as_str()
            .unwrap()
            .starts_with(&format!("/{VIDEO}?a=1&jwt="))
    );
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let refused = &lines[1];
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["auth"], "bad_signature");
    assert!(refused["sub"].is_null());
    assert!(refused["origin_status"].is_null());
}
