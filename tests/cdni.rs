//! RFC 9246 (CDNI URI Signing) claims with the real node: `cdniuc` (regex and hash),
//! `cdniip`, `cdnicrit`, `cdniv`, one-time `jti`, and signed token renewal.
//!
//! The test client sends `Host: 127.0.0.1:PORT`, so the URI a token is bound to is
//! `http://127.0.0.1:PORT/PATH`.

mod common;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::http::{auth_rejections as rejections, header, raw};
use common::token::{good_claims, hs256};
use common::world::{Builder, World};
use common::{bytes, unix_now};
use serde_json::{Value, json};

const OBJECTS: &[&str] = &[
    "courses/101/v.mp4",
    "courses/101/hls/seg-1.ts",
    "courses/101/hls/seg-2.ts",
    "courses/101/hls/seg-3.ts",
    "courses/202/v.mp4",
    "courses/1011/v.mp4",
];

/// `OBJECTS` in the bucket, each of the same 1024 bytes.
fn world() -> Builder {
    World::builder().objects_alike(OBJECTS, &bytes(1024, 9))
}

fn token(extra: Value) -> String {
    let mut claims = good_claims("alice");
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    hs256(&claims)
}

fn claims_of(token: &str) -> serde_json::Map<String, Value> {
    let part = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_container_opens_only_its_uris() {
    let w = world().start().await;
    let host = w.node.http.to_string();
    let regex = token(json!({"cdniuc": "regex:http://127\\.0\\.0\\.1:[0-9]+/courses/101/.*"}));
    // Anchored: a pattern naming the folder without its slash opens neither the folder's
    // objects nor /courses/1011/.
    let folder =
        token(json!({"cdniuc": format!("regex:http://{}/courses/101", host.replace('.', "\\."))}));
    let hashed = token(json!({
        "cdniuc": format!(
            "hash:{}",
            URL_SAFE_NO_PAD.encode(
                digest::digest(
                    &digest::SHA256,
                    format!("http://{host}/courses/101/hls/seg-1.ts").as_bytes()
                )
                .as_ref()
            )
        )
    }));
    let before = w.metrics().await;
    let cases: &[(&str, &String, u16)] = &[
        ("/courses/101/v.mp4", &regex, 200),
        ("/courses/101/hls/seg-1.ts", &regex, 200),
        ("/courses/1011/v.mp4", &regex, 403),
        ("/courses/202/v.mp4", &regex, 403),
        ("/courses/101/v.mp4", &folder, 403),
        ("/courses/1011/v.mp4", &folder, 403),
        ("/courses/101/hls/seg-1.ts", &hashed, 200),
        ("/courses/101/hls/seg-2.ts", &hashed, 403),
        // The token parameter is not part of the URI; forwarded parameters are, and none
        // are forwarded here, so other parameters change nothing.
        ("/courses/101/hls/seg-1.ts?x=1", &hashed, 200),
    ];
    for (path, token, want) in cases {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (code, headers, body) =
            raw(w.node.http, "GET", &format!("{path}{sep}jwt={token}"), &[]).await;
        assert_eq!(code, *want, "{path}");
        if code == 403 {
            assert_eq!(body, b"forbidden\n");
            assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        }
    }
    // Other container types are refused as unreadable tokens.
    let other = token(json!({"cdniuc": "uri:http://127.0.0.1/courses/101/v.mp4"}));
    assert_eq!(w.status("/courses/101/v.mp4", &other).await, 401);
    let after = w.metrics().await;
    assert_eq!(
        rejections(&after, "uri_mismatch") - rejections(&before, "uri_mismatch"),
        5.0
    );
    assert_eq!(
        rejections(&after, "malformed") - rejections(&before, "malformed"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_binding_version_and_critical_claims() {
    let w = world().start().await;
    let before = w.metrics().await;
    let cases: &[(Value, u16)] = &[
        (json!({"cdniip": "127.0.0.1"}), 200),
        (json!({"cdniip": "127.0.0.0/8"}), 200),
        (json!({"cdniip": "127.0.0.2"}), 403),
        (json!({"cdniip": "2001:db8::/32"}), 403),
        (json!({"cdniv": 1}), 200),
        (json!({"cdniv": 2}), 401),
        (
            json!({"cdnicrit": ["exp", "cdniip"], "cdniip": "127.0.0.1"}),
            200,
        ),
        (json!({"cdnicrit": ["exp", "geo"], "geo": "NL"}), 401),
        // No renewal key: a token that needs renewal to be understood is refused.
        (
            json!({"cdnicrit": ["cdniets"], "cdniets": 30, "cdnistt": 1}),
            401,
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(
            w.status("/courses/101/v.mp4", &token(extra.clone())).await,
            *want,
            "{extra}"
        );
    }
    let after = w.metrics().await;
    for (reason, want) in [
        ("address_mismatch", 2.0),
        ("unknown_critical", 2.0),
        ("malformed", 1.0),
    ] {
        assert_eq!(
            rejections(&after, reason) - rejections(&before, reason),
            want,
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_token_is_refused_the_second_time() {
    let w = world()
        .configure(|o| {
            o.extra_auth = "  replay_protection: true\n  replay_cache_entries: 1000\n".into();
        })
        .start()
        .await;
    let once = token(json!({"jti": "lesson-1-view-1"}));
    assert_eq!(w.status("/courses/101/v.mp4", &once).await, 200);
    assert_eq!(w.status("/courses/101/v.mp4", &once).await, 401);
    assert_eq!(w.status("/courses/101/hls/seg-1.ts", &once).await, 401);
    // Without a jti a token cannot be used once only: refused.
    assert_eq!(w.status("/courses/101/v.mp4", &token(json!({}))).await, 401);
    let m = w.metrics().await;
    assert_eq!(rejections(&m, "replayed"), 2.0);
    assert_eq!(rejections(&m, "malformed"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_tokens_come_back_in_a_cookie_or_a_header_and_open_the_next_segment() {
    let w = world()
        .configure(|o| {
            o.extra_auth = "  renewal_key:\n    kid: main\n    algorithm: HS256\n    \
                            secret_file: hmac.key\n"
                .into();
        })
        .cache("")
        .start()
        .await;
    let now = unix_now();
    let short = |extra: Value| {
        let mut extra = extra;
        extra["exp"] = json!(now + 20);
        extra["cdniuc"] = json!("regex:http://[^/]+/courses/101/.*");
        token(extra)
    };
    // cdnistt 1: Set-Cookie under the cookie token source's name (`jwt`).
    let first = short(json!({"cdniets": 600, "cdnistt": 1, "cdnistd": 2}));
    let (code, headers, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/hls/seg-1.ts?jwt={first}"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    let cookie = header(&headers, "set-cookie").expect("a renewed token");
    let (renewed, attributes) = cookie
        .strip_prefix("jwt=")
        .and_then(|rest| rest.split_once("; "))
        .expect("jwt=TOKEN; ...");
    assert_eq!(attributes, "Path=/courses/101/; Max-Age=600; HttpOnly");
    let claims = claims_of(renewed);
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(
        exp > now + 20,
        "renewed exp {exp} is later than {}",
        now + 20
    );
    assert!(exp >= now + 600);
    assert_eq!(claims["sub"], json!("alice"));
    assert_eq!(claims["cdniuc"], json!("regex:http://[^/]+/courses/101/.*"));
    // The renewed token, sent back as the cookie, opens the next segment (and is renewed
    // again); it is still bound to its URIs.
    let (code, headers, _) = raw(
        w.node.http,
        "GET",
        "/courses/101/hls/seg-2.ts",
        &[("cookie", &format!("jwt={renewed}"))],
    )
    .await;
    assert_eq!(code, 200);
    assert!(header(&headers, "set-cookie").is_some_and(|c| c.starts_with("jwt=")));
    let (code, _, _) = raw(
        w.node.http,
        "GET",
        "/courses/202/v.mp4",
        &[("cookie", &format!("jwt={renewed}"))],
    )
    .await;
    assert_eq!(code, 403);

    // A cached copy never carries another client's cookie.
    let plain = token(json!({}));
    let (code, headers, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/hls/seg-1.ts?jwt={plain}"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    assert_eq!(header(&headers, "set-cookie"), None);

    // cdnistt 2: the bare token in x-cdni-token, sent back as the query parameter.
    let second = short(json!({"cdniets": 300, "cdnistt": 2}));
    let (code, headers, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/hls/seg-2.ts?jwt={second}"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "set-cookie"), None);
    let renewed = header(&headers, "x-cdni-token").expect("renewed token");
    assert!(claims_of(renewed)["exp"].as_u64().expect("exp") >= now + 300);
    assert_eq!(w.status("/courses/101/hls/seg-3.ts", renewed).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_written_by_the_slice_path_carry_the_renewed_token_too() {
    let w = world()
        .configure(|o| {
            o.extra_auth = "  renewal_key:\n    kid: main\n    algorithm: HS256\n    \
                            secret_file: hmac.key\n"
                .into();
        })
        // Every object here (1024 bytes) is over the threshold: sliced.
        .cache("  slice_threshold: 1\n  slice_size: 64KiB\n")
        .start()
        .await;
    let now = unix_now();
    let renewing = {
        let mut extra = json!({"cdniets": 600, "cdnistt": 1, "cdnistd": 2});
        extra["exp"] = json!(now + 20);
        extra["cdniuc"] = json!("regex:http://[^/]+/courses/101/.*");
        token(extra)
    };
    let renewed = |headers: &common::http::Headers| {
        header(headers, "set-cookie").is_some_and(|c| c.starts_with("jwt="))
    };
    // HEAD learns the object and answers from its record; a range is
    // answered from slices; a plain cold GET from the probe's bytes.
    // (method, path, request headers, status)
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        u16,
    );
    let cases: [Case; 4] = [
        ("HEAD", "/courses/101/hls/seg-1.ts", &[], 200),
        ("HEAD", "/courses/101/hls/seg-1.ts", &[], 200),
        (
            "GET",
            "/courses/101/hls/seg-1.ts",
            &[("range", "bytes=0-9")],
            206,
        ),
        ("GET", "/courses/101/hls/seg-2.ts", &[], 200),
    ];
    for (method, path, extra, want) in cases {
        let (code, headers, _) = raw(
            w.node.http,
            method,
            &format!("{path}?jwt={renewing}"),
            extra,
        )
        .await;
        assert_eq!(code, want, "{method} {path} {extra:?}");
        assert!(renewed(&headers), "{method} {path} {extra:?}: {headers:?}");
    }
    // Nothing stored carries it: another client's answers have no cookie.
    let plain = token(json!({}));
    for (method, extra) in [("HEAD", &[][..]), ("GET", &[("range", "bytes=0-9")][..])] {
        let (_, headers, _) = raw(
            w.node.http,
            method,
            &format!("/courses/101/hls/seg-1.ts?jwt={plain}"),
            extra,
        )
        .await;
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{method}");
        assert_eq!(header(&headers, "set-cookie"), None, "{method}");
    }
}
