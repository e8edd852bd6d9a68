//! The token policy with the real node: path scopes, lifetime, revocation, attack tokens,
//! JWKS URLs with rotation, and the client address.

mod common;

use std::time::{Duration, Instant};

use common::http::{auth_rejections as rejections, metric, raw};
use common::jwks::{JwksServer, oct_jwks};
use common::token::{good_claims, hs256, sign, unsigned, with_raw_header};
use common::world::{ADMIN_TOKEN, Builder, World};
use common::{bytes, eventually, unix_now};
use jsonwebtoken::Algorithm;
use serde_json::json;

const OBJECTS: &[&str] = &[
    "courses/101/v.mp4",
    "courses/101/hls/seg-1.ts",
    "courses/202/v.mp4",
    "courses/1011/v.mp4",
];

/// `OBJECTS` in the bucket, each of the same 2048 bytes.
fn world() -> Builder {
    World::builder().objects_alike(OBJECTS, &bytes(2048, 5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_opens_only_its_paths() {
    let w = world()
        .configure(|o| o.extra_auth = "  scope_claim: paths\n".into())
        .start()
        .await;
    let mut claims = good_claims("alice");
    claims["paths"] = json!(["/courses/101/*"]);
    let token = hs256(&claims);
    let before = w.metrics().await;
    assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200);
    assert_eq!(w.status("/courses/101/hls/seg-1.ts", &token).await, 200);
    for path in ["/courses/202/v.mp4", "/courses/1011/v.mp4"] {
        let (code, headers, body) =
            raw(w.node.http, "GET", &format!("{path}?jwt={token}"), &[]).await;
        assert_eq!(code, 403, "{path}");
        assert_eq!(body, b"forbidden\n");
        assert_eq!(
            common::http::header(&headers, "cache-control"),
            Some("no-store")
        );
    }
    // Dot segments cannot walk out of the scope: they are refused before the token.
    let (code, _, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/../202/v.mp4?jwt={token}"),
        &[],
    )
    .await;
    assert_eq!(code, 400);
    // A token without the claim opens nothing (allow_unscoped_tokens is off by default).
    assert_eq!(
        w.status("/courses/101/v.mp4", &hs256(&good_claims("bob")))
            .await,
        403
    );
    let after = w.metrics().await;
    assert_eq!(
        rejections(&after, "out_of_scope") - rejections(&before, "out_of_scope"),
        2.0
    );
    assert_eq!(
        rejections(&after, "unscoped") - rejections(&before, "unscoped"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_tokens_are_refused() {
    let rsa_pub = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys/rsa2048.pub.pem"),
    )
    .expect("fixture");
    let w = world()
        .file("rsa.pub.pem", rsa_pub.clone())
        .configure(|o| {
            o.extra_keys =
                "    - kid: rs\n      algorithm: RS256\n      public_key_file: rsa.pub.pem\n"
                    .into();
            // The oversized token (about 12 KiB, in the query) must reach
            // the token gate: request lines up to 16 KiB are let through.
            o.extra_yaml = "limits:\n  max_header_field_bytes: 16KiB\n".into();
        })
        .start()
        .await;
    let now = unix_now();
    let good = good_claims("alice");
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let hdr = |extra: serde_json::Value| {
        let mut h = json!({"alg": "HS256", "typ": "JWT", "kid": "main"});
        if let (Some(h), serde_json::Value::Object(extra)) = (h.as_object_mut(), extra) {
            h.extend(extra);
        }
        h
    };
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for spelling in ["none", "None", "NONE", "nOnE"] {
        cases.push((
            format!("alg {spelling}"),
            unsigned(spelling, &good),
            "wrong_algorithm",
        ));
    }
    cases.push((
        "HS256 signed with the RSA public key".into(),
        sign(Algorithm::HS256, Some("rs"), &good, &rsa_pub),
        "wrong_algorithm",
    ));
    for kid in [
        "../../etc/passwd",
        "/dev/null",
        "' OR '1'='1",
        "main; DROP TABLE keys",
    ] {
        cases.push((
            format!("kid {kid}"),
            with_raw_header(&hdr(json!({"kid": kid})), &good),
            "unknown_key",
        ));
    }
    cases.push((
        "crit".into(),
        with_raw_header(&hdr(json!({"crit": ["exp"]})), &good),
        "crit",
    ));
    cases.push((
        "aud number".into(),
        hs256(&with("aud", json!(7))),
        "malformed",
    ));
    cases.push((
        "aud object".into(),
        hs256(&with("aud", json!({"a": 1}))),
        "malformed",
    ));
    cases.push((
        "iss number".into(),
        hs256(&with("iss", json!(7))),
        "malformed",
    ));
    cases.push((
        "iss array".into(),
        hs256(&with("iss", json!(["x"]))),
        "malformed",
    ));
    cases.push((
        "far-future exp".into(),
        hs256(&with("exp", json!(now + 10 * 365 * 86_400))),
        "lifetime",
    ));
    cases.push((
        "exp u64::MAX".into(),
        hs256(&with("exp", json!(u64::MAX))),
        "lifetime",
    ));
    cases.push((
        "exp - iat over a day".into(),
        hs256(&with("iat", json!(now - 2 * 86_400))),
        "lifetime",
    ));
    cases.push((
        "oversized".into(),
        hs256(&with("pad", json!("x".repeat(9000)))),
        "too_large",
    ));
    let before = w.metrics().await;
    for (name, token, _) in &cases {
        let code = w.status("/courses/101/v.mp4", token).await;
        assert_eq!(code, 401, "{name}");
    }
    // jku, x5u and an embedded jwk are ignored: the token still verifies with `main`.
    let ignored = with_raw_header(
        &hdr(
            json!({"jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/c",
                    "jwk": {"kty": "oct", "k": "AAAA"}}),
        ),
        &good,
    );
    assert_eq!(w.status("/courses/101/v.mp4", &ignored).await, 200);
    // And one signed with a key named by jku is not.
    let attacker = sign(
        Algorithm::HS256,
        Some("main"),
        &good,
        b"attacker-secret-attacker-secret-0000",
    );
    assert_eq!(w.status("/courses/101/v.mp4", &attacker).await, 401);
    // Two token sources with different tokens: 400.
    let other = hs256(&good_claims("bob"));
    let (code, _, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/v.mp4?jwt={}", hs256(&good)),
        &[("authorization", &format!("Bearer {other}"))],
    )
    .await;
    assert_eq!(code, 400);
    let after = w.metrics().await;
    for reason in [
        "malformed",
        "wrong_algorithm",
        "unknown_key",
        "lifetime",
        "crit",
        "too_large",
    ] {
        let want = cases.iter().filter(|c| c.2 == reason).count() as f64;
        assert_eq!(
            rejections(&after, reason) - rejections(&before, reason),
            want,
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_jti_is_refused_within_a_second() {
    let w = world()
        .file("deny.txt", "# none yet\n")
        .configure(|o| o.extra_auth = "  denylist_file: deny.txt\n".into())
        .admin_token()
        .start()
        .await;
    let admin_auth = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let admin_auth: Vec<(&str, &str)> = admin_auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut claims = good_claims("alice");
    claims["jti"] = json!("lesson-1");
    let token = hs256(&claims);
    assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200);
    assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200, "cached");

    // Through the admin listener.
    let (code, _, _) = raw(w.node.admin, "PUT", "/auth/denylist/jti/lesson-1", &[]).await;
    assert_eq!(code, 401, "the denylist needs the admin token");
    let started = Instant::now();
    let (code, _, _) = raw(
        w.node.admin,
        "PUT",
        "/auth/denylist/jti/lesson-1",
        &admin_auth,
    )
    .await;
    assert_eq!(code, 200);
    eventually("revocation", Duration::from_secs(1), || {
        let token = token.clone();
        let w = &w;
        async move { (w.status("/courses/101/v.mp4", &token).await == 401).then_some(()) }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let (_, _, listing) = raw(w.node.admin, "GET", "/auth/denylist", &admin_auth).await;
    assert_eq!(listing, b"jti lesson-1\n");
    let (code, _, _) = raw(
        w.node.admin,
        "DELETE",
        "/auth/denylist/jti/lesson-1",
        &admin_auth,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200);

    // Through the file, reloaded without a restart.
    let started = Instant::now();
    std::fs::write(w.node.dir.path().join("deny.txt"), "sub alice\n").expect("write");
    eventually("file revocation", Duration::from_secs(1), || {
        let token = token.clone();
        let w = &w;
        async move { (w.status("/courses/101/v.mp4", &token).await == 401).then_some(()) }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let m = w.metrics().await;
    assert!(rejections(&m, "revoked") >= 2.0);
    assert_eq!(metric(&m, "cdn_node_auth_denylist_entries", &[]), 1.0);
}

fn secret(n: usize) -> Vec<u8> {
    format!("rotating-secret-number-{n:04}-long-enough-for-hs256").into_bytes()
}

fn jwks_token(n: usize) -> String {
    sign(
        Algorithm::HS256,
        Some(&format!("k{n}")),
        &good_claims("alice"),
        &secret(n),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_at_a_jwks_url_while_requests_flow() {
    let s1 = secret(1);
    let jwks = JwksServer::start(oct_jwks(&[("k1", &s1)])).await;
    let w = world().jwks(&jwks, 3600).start().await;
    // Ready means fetched.
    assert!(jwks.fetches() >= 1);
    assert_eq!(w.status("/courses/101/v.mp4", &jwks_token(1)).await, 200);

    // A player keeps fetching with the token of the moment while the issuer rotates:
    // publish k(n+1) beside k(n), sign with k(n+1), then retire k(n).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut players = Vec::new();
    for _ in 0..2 {
        let current = stop.clone();
        let http = w.node.http;
        players.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            let mut sent = 0;
            loop {
                let n = current.load(std::sync::atomic::Ordering::Acquire);
                if n == 0 {
                    return (sent, refused);
                }
                let (code, _, _) = raw(
                    http,
                    "GET",
                    &format!("/courses/101/v.mp4?jwt={}", jwks_token(n)),
                    &[],
                )
                .await;
                sent += 1;
                if code != 200 {
                    refused.push((n, code));
                }
            }
        }));
    }
    for n in 1..6 {
        let (a, b) = (secret(n), secret(n + 1));
        let (ka, kb) = (format!("k{n}"), format!("k{}", n + 1));
        jwks.publish(oct_jwks(&[(&ka, &a), (&kb, &b)]));
        stop.store(n + 1, std::sync::atomic::Ordering::Release);
        // The node learns k(n+1) from the first request that names it.
        let fetched = jwks.fetches();
        eventually(
            "a request with the new kid",
            Duration::from_secs(10),
            || {
                let w = &w;
                async move {
                    (w.status("/courses/101/v.mp4", &jwks_token(n + 1)).await == 200).then_some(())
                }
            },
        )
        .await;
        assert!(jwks.fetches() > fetched, "the new kid was fetched");
        jwks.publish(oct_jwks(&[(&kb, &b)]));
    }
    stop.store(0, std::sync::atomic::Ordering::Release);
    for p in players {
        let (sent, refused) = p.await.expect("player");
        assert!(sent > 0);
        assert!(refused.is_empty(), "valid requests refused: {refused:?}");
    }
    let m = w.metrics().await;
    assert!(
        metric(
            &m,
            "cdn_node_auth_key_refreshes_total",
            &[("source", "url"), ("result", "ok")]
        ) >= 6.0
    );
    assert!(metric(&m, "cdn_node_auth_keys_loaded", &[]) >= 2.0);
    // The HMAC file key and the static one still work.
    assert_eq!(
        w.status("/courses/101/v.mp4", &hs256(&good_claims("a")))
            .await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_is_not_ready_until_its_keys_are_fetched_and_keeps_them_when_fetches_fail() {
    let jwks = JwksServer::start(oct_jwks(&[("k1", &secret(1))])).await;
    jwks.set_failing(true);
    let start = tokio::spawn(
        World::builder()
            .object("courses/101/v.mp4", &bytes(10, 1))
            .jwks(&jwks, 1)
            .start(),
    );
    eventually("failed fetches", Duration::from_secs(20), || {
        let n = jwks.fetches();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert!(!start.is_finished(), "ready before any key was fetched");
    jwks.set_failing(false);
    let w = tokio::time::timeout(Duration::from_secs(40), start)
        .await
        .expect("node ready in time")
        .expect("node task");
    assert_eq!(w.status("/courses/101/v.mp4", &jwks_token(1)).await, 200);
    // Fetches fail again: the last good keys stay, the failures are counted.
    jwks.set_failing(true);
    let errors = eventually("a failed refresh", Duration::from_secs(10), || {
        let w = &w;
        async move {
            let m = w.metrics().await;
            let e = metric(
                &m,
                "cdn_node_auth_key_refreshes_total",
                &[("source", "url"), ("result", "error")],
            );
            (e >= 1.0).then_some(m)
        }
    })
    .await;
    assert!(metric(&errors, "cdn_node_auth_keys_loaded", &[]) >= 2.0);
    assert_eq!(w.status("/courses/101/v.mp4", &jwks_token(1)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_shows_the_client_behind_a_trusted_proxy() {
    let w = world()
        .configure(|o| {
            o.extra_auth = "  client_address:\n    header: x-forwarded-for\n    trusted_proxies: [\"127.0.0.1\"]\n".into();
        })
        .start()
        .await;
    let token = hs256(&good_claims("alice"));
    let (code, _, _) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/v.mp4?jwt={token}"),
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.9")],
    )
    .await;
    assert_eq!(code, 200);
    let line = eventually("the access log line", Duration::from_secs(5), || {
        let log = w.node.access_log();
        async move { log.into_iter().last() }
    })
    .await;
    assert_eq!(line["client"], "198.51.100.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_picked_up_without_a_restart() {
    let w = world().start().await;
    let old = hs256(&good_claims("alice"));
    let new_secret = "the-next-hmac-secret-of-the-platform-0123";
    let new = common::token::sign(
        jsonwebtoken::Algorithm::HS256,
        Some("main"),
        &good_claims("alice"),
        new_secret.as_bytes(),
    );
    assert_eq!(w.status("/courses/101/v.mp4", &old).await, 200);
    assert_eq!(w.status("/courses/101/v.mp4", &new).await, 401);
    // SIGHUP asks for a reload; it must not stop the node.
    w.node.signal("HUP");
    assert_eq!(w.status("/courses/101/v.mp4", &old).await, 200);
    // The platform rotates the secret in place.
    std::fs::write(w.node.dir.path().join("hmac.key"), new_secret).unwrap();
    eventually("the new key", Duration::from_secs(5), || {
        let (w, new) = (&w, new.clone());
        async move { (w.status("/courses/101/v.mp4", &new).await == 200).then_some(()) }
    })
    .await;
    assert_eq!(w.status("/courses/101/v.mp4", &old).await, 401);
}

/// `good_claims` with `aud` set to `aud`, or without `aud` when it is null.
fn for_audience(aud: serde_json::Value) -> serde_json::Value {
    let mut claims = good_claims("alice");
    if !aud.is_null() {
        claims["aud"] = aud;
    } else if let Some(all) = claims.as_object_mut() {
        all.remove("aud");
    }
    claims
}

/// RFC 7519 4.1.3 with no `auth.audience`: a token minted with the same key for another
/// service (`aud: billing-api`) is refused and counted, one without `aud` opens; and
/// registered claims of the wrong type are `malformed` though nothing is configured for
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_audience_a_token_for_another_service_is_refused() {
    let w = world().configure(|o| o.audience = None).start().await;
    let before = w.metrics().await;
    let foreign = hs256(&for_audience(json!("billing-api")));
    let (code, headers, body) = raw(
        w.node.http,
        "GET",
        &format!("/courses/101/v.mp4?jwt={foreign}"),
        &[],
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(
        common::http::header(&headers, "www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert!(!String::from_utf8_lossy(&body).contains("aud"));
    assert_eq!(
        w.status("/courses/101/v.mp4", &hs256(&for_audience(json!(null))))
            .await,
        200
    );
    let mut malformed = vec![
        for_audience(json!(123)),
        for_audience(json!(["billing-api", 7])),
    ];
    for (claim, value) in [
        ("iss", json!({"url": "https://learn.example"})),
        ("sub", json!(42)),
        ("exp", json!(-1)),
    ] {
        let mut claims = for_audience(json!(null));
        claims[claim] = value;
        malformed.push(claims);
    }
    for claims in &malformed {
        assert_eq!(
            w.status("/courses/101/v.mp4", &hs256(claims)).await,
            401,
            "{claims}"
        );
    }
    let after = w.metrics().await;
    assert_eq!(
        rejections(&after, "wrong_audience") - rejections(&before, "wrong_audience"),
        1.0
    );
    assert_eq!(
        rejections(&after, "malformed") - rejections(&before, "malformed"),
        malformed.len() as f64
    );
    assert!(
        w.node.stderr().contains("auth.audience is not set"),
        "the log says why: {}",
        w.node.stderr()
    );
}

/// `audience: [a, b]`: a token for either opens, one for neither does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_audience_is_accepted() {
    let w = world()
        .configure(|o| o.audience = Some("[\"cdn-eu\", \"cdn-us\"]".into()))
        .start()
        .await;
    let before = w.metrics().await;
    for aud in [
        json!("cdn-eu"),
        json!("cdn-us"),
        json!(["billing-api", "cdn-us"]),
    ] {
        let token = hs256(&for_audience(aud.clone()));
        assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200, "{aud}");
    }
    for aud in [json!("cdn-node"), json!([]), json!(null)] {
        let token = hs256(&for_audience(aud.clone()));
        assert_eq!(w.status("/courses/101/v.mp4", &token).await, 401, "{aud}");
    }
    let after = w.metrics().await;
    assert_eq!(
        rejections(&after, "wrong_audience") - rejections(&before, "wrong_audience"),
        3.0
    );
}

/// `ignore_audience: true` accepts any `aud`, but not one of the wrong type; with
/// `audience` too it is a configuration error naming both keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_audience_accepts_any_well_typed_aud() {
    let out = world()
        .configure(|o| o.extra_auth = "  ignore_audience: true\n".into())
        .check();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("auth.audience: is set together with auth.ignore_audience: true"),
        "{text}"
    );
    let w = world()
        .configure(|o| {
            o.audience = None;
            o.extra_auth = "  ignore_audience: true\n".into();
        })
        .start()
        .await;
    for aud in [json!("billing-api"), json!([]), json!(null)] {
        let token = hs256(&for_audience(aud.clone()));
        assert_eq!(w.status("/courses/101/v.mp4", &token).await, 200, "{aud}");
    }
    let before = w.metrics().await;
    let token = hs256(&for_audience(json!({"billing-api": true})));
    assert_eq!(w.status("/courses/101/v.mp4", &token).await, 401);
    let after = w.metrics().await;
    assert_eq!(
        rejections(&after, "malformed") - rejections(&before, "malformed"),
        1.0
    );
}
