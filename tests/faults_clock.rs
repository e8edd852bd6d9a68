//! The node's wall clock jumping an hour back and an hour forward while it
//! runs (libfaketime, `common::clock`): token expiry and cache freshness are
//! judged by the node's clock, consistently, and nothing breaks. The time
//! logic itself takes `now` and has its unit tests (`auth::claims`,
//! `cache::policy`, `auth::replay`); this checks the running node.

mod common;

use std::time::Duration;

use common::clock::FakeClock;
use common::http::{header, metric, raw};
use common::token::hs256;
use common::world::World;
use common::{bytes, eventually, unix_now};
use serde_json::json;

use common::node::{AUDIENCE, ISSUER};

/// A token for `sub` with these times (Unix seconds).
fn token(sub: &str, iat: u64, nbf: Option<u64>, exp: u64) -> String {
    let mut claims = json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": iat, "exp": exp });
    if let Some(nbf) = nbf {
        claims["nbf"] = json!(nbf);
    }
    hs256(&claims)
}

/// Whether the node takes `token` now: a folder path, answered 404 past
/// the token gate without the origin, 401 at it.
async fn takes(w: &World, token: &str) -> bool {
    match w.status("/v/", token).await {
        404 => true,
        401 => false,
        other => panic!("status {other}"),
    }
}

/// Waits until the node's clock shows the offset the test set: whether it
/// takes `probe` is `want`.
async fn clock_moved(w: &World, probe: &str, want: bool, what: &str) {
    eventually(what, Duration::from_secs(15), || async {
        (takes(w, probe).await == want).then_some(())
    })
    .await;
}

/// The `Age` of an answer, which must be a small whole number of seconds.
fn age(headers: &common::http::Headers) -> u64 {
    let age = header(headers, "age").unwrap_or("0");
    let age: u64 = age.parse().unwrap_or_else(|_| panic!("Age {age:?}"));
    assert!(age < 600, "Age {age}");
    age
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_back_and_an_hour_forward() {
    let Some(clock) = FakeClock::new("the clock jump tests") else {
        return;
    };
    let a = bytes(200_000, 1);
    let b = bytes(200_000, 2);
    let w = World::builder()
        .object("v/a.mp4", &a)
        .object("v/b.mp4", &b)
        .tap()
        .cache(
            "  default_ttl_seconds: 600\n  stale_while_revalidate_seconds: 0\n  stale_if_error_seconds: 0\n",
        )
        .configure(|o| o.env = clock.env())
        .start()
        .await;
    let started = unix_now();
    let (status, headers, got) = w.get("/v/a.mp4").await;
    assert_eq!(status, 200);
    assert!(got == a);
    assert_eq!(header(&headers, "x-cache"), Some("MISS"));

    // Tokens that tell where the node's clock is: good only an hour back,
    // good only an hour ahead.
    let past = token("past", started - 7200, None, started - 1800);
    let soon = token("soon", started, None, started + 1800);
    assert!(takes(&w, &soon).await);
    let ahead = token("ahead", started, Some(started + 1800), started + 7200);
    assert!(!takes(&w, &past).await);
    assert!(!takes(&w, &ahead).await);

    // ---- an hour back -----------------------------------------------------
    clock.set("-1h");
    clock_moved(&w, &past, true, "the node's clock an hour back").await;
    // The stored object is still fresh (its expiry is further away): a hit,
    // with a sane Age.
    let (status, headers, got) = w.get("/v/a.mp4").await;
    assert_eq!(status, 200);
    assert!(got == a);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    age(&headers);
    // A token issued now is, by the node's clock, issued an hour from now:
    // refused. The world's token, checked before the jump, is still good.
    let not_yet = |m: &str| {
        metric(
            m,
            "cdn_node_auth_rejections_total",
            &[("reason", "not_yet_valid")],
        )
    };
    let before = not_yet(&w.metrics().await);
    let fresh = token("fresh", unix_now(), None, unix_now() + 3600);
    assert_eq!(w.status("/v/a.mp4", &fresh).await, 401);
    assert_eq!(not_yet(&w.metrics().await), before + 1.0);
    assert_eq!(w.get("/v/a.mp4").await.0, 200);

    // ---- an hour ahead ----------------------------------------------------
    clock.set("+1h");
    clock_moved(&w, &ahead, true, "the node's clock an hour ahead").await;
    // A token that expires within the hour: expired now.
    assert!(!takes(&w, &soon).await);
    // The object's ten minutes are over by the node's clock: fetched again,
    // with a request S3 refuses (its signature's date is an hour off).
    let (status, headers, got) =
        raw(w.node.http, "GET", &format!("/v/a.mp4?jwt={ahead}"), &[]).await;
    assert_eq!(status, 502);
    assert_eq!(got, b"bad gateway\n");
    assert_eq!(header(&headers, "x-cache"), Some("EXPIRED"));
    let line = eventually("the access log line", Duration::from_secs(10), || async {
        w.node.access_log().into_iter().find(|l| l["status"] == 502)
    })
    .await;
    assert_eq!(line["origin_status"], 403);
    assert_eq!(line["origin_error"], "s3_denied");
    assert_eq!(line["s3_code"], "RequestTimeTooSkewed");
    assert_eq!(line["cache"], "expired");

    // ---- back to the real time -------------------------------------------
    clock.set("+0");
    clock_moved(&w, &ahead, false, "the node's clock back").await;
    // Freshness ends at a point in time: the object is fresh again.
    let (status, headers, got) = w.get("/v/a.mp4").await;
    assert_eq!(status, 200);
    assert!(got == a);
    assert_eq!(header(&headers, "x-cache"), Some("HIT"));
    age(&headers);
    // S3 takes the node's requests again.
    for want in ["MISS", "HIT"] {
        let (status, headers, got) = w.get("/v/b.mp4").await;
        assert_eq!(status, 200);
        assert!(got == b);
        assert_eq!(header(&headers, "x-cache"), Some(want));
        age(&headers);
    }
    let stderr = w.node.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_token_stays_used_across_clock_jumps() {
    let Some(clock) = FakeClock::new("the clock jump tests") else {
        return;
    };
    let w = World::builder()
        .configure(|o| {
            o.extra_auth = "  replay_protection: true\n  replay_cache_entries: 1000\n".into();
            o.env = clock.env();
        })
        .origin_down()
        .start()
        .await;
    let started = unix_now();
    let with_jti = |jti: &str, exp: u64| {
        hs256(&json!({
            "sub": "s", "iss": ISSUER, "aud": AUDIENCE, "iat": started, "exp": exp, "jti": jti,
        }))
    };
    let once = with_jti("once", started + 1800);
    // Whether the node's clock is an hour ahead: a token good only then,
    // with a `jti` of its own each time.
    let seq = std::sync::atomic::AtomicU64::new(0);
    let ahead_is = |want: bool, what: &'static str| {
        let (w, seq) = (&w, &seq);
        async move {
            eventually(what, Duration::from_secs(15), || async {
                let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = hs256(&json!({
                    "sub": "s", "iss": ISSUER, "aud": AUDIENCE, "iat": started,
                    "nbf": started + 1800, "exp": started + 7200, "jti": format!("ahead-{n}"),
                }));
                (takes(w, &t).await == want).then_some(())
            })
            .await
        }
    };
    assert!(takes(&w, &once).await);
    assert!(!takes(&w, &once).await, "used twice");

    // An hour ahead, the token has expired, and another one-time token is
    // used (the replay cache drops what it holds for expired tokens).
    clock.set("+1h");
    ahead_is(true, "the node's clock an hour ahead").await;
    assert!(!takes(&w, &once).await);
    assert!(takes(&w, &with_jti("later", started + 7200)).await);

    // Back to the real time, the token is within its lifetime again, and
    // still used.
    clock.set("+0");
    ahead_is(false, "the node's clock back").await;
    assert!(!takes(&w, &once).await, "a one-time token used again");
    let m = w.metrics().await;
    assert_eq!(
        metric(
            &m,
            "cdn_node_auth_rejections_total",
            &[("reason", "replayed")]
        ),
        2.0
    );
}
