use super::*;
use std::time::UNIX_EPOCH;

fn policy() -> Policy {
    Policy {
        default_ttl: Duration::from_secs(3600),
        override_ttl: None,
        not_found_ttl: Duration::from_secs(10),
        stale_while_revalidate: Duration::from_secs(60),
        stale_if_error: Duration::from_secs(300),
        plain_origin: true,
    }
}

/// (status, headers, expected fresh seconds or skip reason, swr, sie)
type Case = (
    u16,
    &'static [(&'static str, &'static str)],
    Result<u64, &'static str>,
    u32,
    u32,
);

const CASES: &[Case] = &[
    // Before a web server: a 200 that says nothing of its freshness is
    // kept on its Last-Modified, revalidated each time on an ETag alone,
    // not kept with neither (before S3: the default, further below).
    (200, &[], Err("no_freshness"), 0, 0),
    (200, &[("etag", "\"a\"")], Ok(0), 60, 300),
    (
        200,
        &[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")],
        Ok(100),
        60,
        300,
    ),
    (200, &[("cache-control", "max-age=120")], Ok(120), 60, 300),
    // Time spent upstream counts.
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "100")],
        Ok(20),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "500")],
        Ok(0),
        60,
        300,
    ),
    // An Age that does not read: stale on arrival, revalidated.
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "x")],
        Ok(0),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "0, 0")],
        Ok(0),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "-1")],
        Ok(0),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("age", "1.5")],
        Ok(0),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("age", " 20 ")],
        Ok(100),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=3600"), ("age", "600")],
        Ok(3000),
        60,
        300,
    ),
    (200, &[("vary", "*")], Err("vary"), 0, 0),
    (200, &[("vary", "Accept-Language, *")], Err("vary"), 0, 0),
    (
        200,
        &[("vary", "Origin"), ("cache-control", "max-age=3600")],
        Ok(3600),
        60,
        300,
    ),
    // s-maxage applies to a shared cache and forbids serving stale
    // without validation, as must-revalidate and proxy-revalidate do:
    // no default stale windows, the origin's own ones still count.
    (
        200,
        &[("cache-control", "max-age=120, s-maxage=30")],
        Ok(30),
        0,
        0,
    ),
    (
        200,
        &[("cache-control", "max-age=120, must-revalidate")],
        Ok(120),
        0,
        0,
    ),
    (
        200,
        &[("cache-control", "max-age=120, proxy-revalidate")],
        Ok(120),
        0,
        0,
    ),
    (
        200,
        &[(
            "cache-control",
            "max-age=120, must-revalidate, stale-if-error=30",
        )],
        Ok(120),
        0,
        30,
    ),
    (
        200,
        &[(
            "cache-control",
            "max-age=5, stale-while-revalidate=7, stale-if-error=9",
        )],
        Ok(5),
        7,
        9,
    ),
    (200, &[("cache-control", "no-cache")], Ok(0), 0, 0),
    (200, &[("cache-control", "no-store")], Err("no_store"), 0, 0),
    (
        200,
        &[("cache-control", "private, max-age=60")],
        Err("private"),
        0,
        0,
    ),
    (
        200,
        &[("expires", "Thu, 01 Jan 1970 00:20:00 GMT")],
        Ok(1200 - 1000),
        60,
        300,
    ),
    (200, &[("expires", "garbage")], Ok(0), 60, 300),
    // Expires counts from the origin's Date, not from the node's clock.
    (
        200,
        &[
            ("date", "Thu, 01 Jan 1970 02:00:00 GMT"),
            ("expires", "Thu, 01 Jan 1970 02:10:00 GMT"),
        ],
        Ok(600),
        60,
        300,
    ),
    (
        200,
        &[
            ("date", "Thu, 01 Jan 1970 02:00:00 GMT"),
            ("expires", "Thu, 01 Jan 1970 01:00:00 GMT"),
        ],
        Ok(0),
        60,
        300,
    ),
    (
        200,
        &[
            ("date", "garbage"),
            ("expires", "Thu, 01 Jan 1970 00:20:00 GMT"),
        ],
        Ok(1200 - 1000),
        60,
        300,
    ),
    (200, &[("set-cookie", "a=b")], Err("set_cookie"), 0, 0),
    (404, &[], Ok(10), 60, 300),
    // A 404 follows the origin's freshness when it gives one; the short
    // default stands in when it does not.
    (404, &[("cache-control", "max-age=9999")], Ok(9999), 60, 300),
    (
        404,
        &[("cache-control", "max-age=0")],
        Err("not_found_ttl_zero"),
        60,
        300,
    ),
    (404, &[("cache-control", "no-store")], Err("no_store"), 0, 0),
    (
        404,
        &[
            ("date", "Thu, 01 Jan 1970 00:10:00 GMT"),
            ("expires", "Thu, 01 Jan 1970 00:10:30 GMT"),
        ],
        Ok(30),
        60,
        300,
    ),
    // Any other final answer: for as long as the origin says, never
    // on the node's defaults.
    (206, &[], Err("status"), 0, 0),
    (206, &[("cache-control", "max-age=60")], Err("status"), 0, 0),
    (304, &[("cache-control", "max-age=60")], Err("status"), 0, 0),
    (301, &[], Err("status"), 0, 0),
    (301, &[("cache-control", "max-age=60")], Ok(60), 60, 300),
    (401, &[], Err("status"), 0, 0),
    (403, &[], Err("status"), 0, 0),
    (
        410,
        &[("expires", "Thu, 01 Jan 1970 00:20:00 GMT")],
        Ok(200),
        60,
        300,
    ),
    (500, &[("cache-control", "max-age=60")], Ok(60), 60, 300),
    (
        500,
        &[("cache-control", "max-age=60, no-store")],
        Err("no_store"),
        0,
        0,
    ),
    (503, &[], Err("status"), 0, 0),
    // A heuristically cacheable status, or one marked public, with a
    // Last-Modified: a tenth of its age, at most the default lifetime.
    (
        410,
        &[
            ("date", "Thu, 01 Jan 1970 02:00:00 GMT"),
            ("last-modified", "Thu, 01 Jan 1970 01:00:00 GMT"),
        ],
        Ok(360),
        60,
        300,
    ),
    (
        301,
        &[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")],
        Ok(100),
        60,
        300,
    ),
    (
        501,
        &[
            ("date", "Fri, 02 Jan 1970 00:00:00 GMT"),
            ("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ],
        Ok(3600),
        60,
        300,
    ),
    (
        599,
        &[
            ("cache-control", "public"),
            ("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ],
        Ok(100),
        60,
        300,
    ),
    (
        599,
        &[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")],
        Err("status"),
        0,
        0,
    ),
    (
        403,
        &[("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT")],
        Err("status"),
        0,
        0,
    ),
    (410, &[], Err("status"), 0, 0),
    // must-understand: only a status this node knows, and then no-store
    // gives way to it.
    (
        599,
        &[("cache-control", "max-age=60, must-understand")],
        Err("must_understand"),
        0,
        0,
    ),
    (
        200,
        &[("cache-control", "max-age=60, must-understand, no-store")],
        Ok(60),
        60,
        300,
    ),
    // CDN-Cache-Control (RFC 9213) governs in place of Cache-Control and
    // Expires; an empty one does not count.
    (
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=600"),
        ],
        Ok(600),
        60,
        300,
    ),
    (
        200,
        &[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "no-store"),
        ],
        Err("no_store"),
        60,
        300,
    ),
    (
        200,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600, stale-while-revalidate=5"),
        ],
        Ok(600),
        5,
        300,
    ),
    (
        200,
        &[("cdn-cache-control", "max-age=60, must-revalidate")],
        Ok(60),
        0,
        0,
    ),
    (
        200,
        &[
            ("cdn-cache-control", "public"),
            ("date", "Thu, 01 Jan 1970 00:16:40 GMT"),
            ("expires", "Thu, 01 Jan 1970 01:00:00 GMT"),
        ],
        Err("no_freshness"),
        60,
        300,
    ),
    (
        200,
        &[("cache-control", "max-age=120"), ("cdn-cache-control", "")],
        Ok(120),
        60,
        300,
    ),
    // Surrogate-Control addressed to every surrogate or to this node comes
    // before both; its max-age counts from the Age the answer came with.
    (
        200,
        &[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=600;cdn-node"),
        ],
        Ok(600),
        60,
        300,
    ),
    (
        200,
        &[
            ("cache-control", "max-age=600"),
            ("surrogate-control", "no-store"),
        ],
        Err("no_store"),
        60,
        300,
    ),
    (
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1"),
        ],
        Ok(1),
        60,
        300,
    ),
    (
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1;elsewhere"),
        ],
        Ok(3600),
        60,
        300,
    ),
    (
        200,
        &[
            ("cdn-cache-control", "max-age=60"),
            ("surrogate-control", "max-age=600"),
        ],
        Ok(600),
        60,
        300,
    ),
    (
        200,
        &[("surrogate-control", "max-age=600"), ("age", "100")],
        Ok(500),
        60,
        300,
    ),
];

#[test]
fn decisions() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    for (status, headers, want, swr, sie) in CASES {
        let mut resp = ResponseHeader::build(*status, None).unwrap();
        for (n, v) in *headers {
            resp.insert_header(*n, *v).unwrap();
        }
        let got = policy().decide(&resp, now);
        let want = match want {
            Ok(fresh) => Decision::Store {
                fresh_until: now + Duration::from_secs(*fresh),
                stale_while_revalidate_sec: *swr,
                stale_if_error_sec: *sie,
                upstream_age: match (headers.iter().find(|(n, _)| *n == "age"), &got) {
                    // The rows' readable Ages, and none for the others.
                    (Some(_), Decision::Store { upstream_age, .. }) => *upstream_age,
                    _ => Duration::ZERO,
                },
            },
            Err(reason) => Decision::Skip(reason),
        };
        assert_eq!(got, want, "{status} {headers:?}");
    }
}

#[test]
fn the_age_a_hit_counts_from_is_the_one_that_reads() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    for (age, want) in [("30", 30), (" 20 ", 20), ("x", 0), ("0, 0", 0), ("-1", 0)] {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("cache-control", "max-age=120").unwrap();
        resp.insert_header("age", age).unwrap();
        assert!(
            matches!(policy().decide(&resp, now), Decision::Store { upstream_age, .. } if upstream_age == Duration::from_secs(want)),
            "{age}"
        );
    }
}

#[test]
fn an_authorized_request_is_shared_only_as_the_origin_allows() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let cases: &[(&str, bool)] = &[
        ("max-age=60", false),
        ("max-age=60, public", true),
        ("s-maxage=60", true),
        ("max-age=60, must-revalidate", true),
        ("", false),
    ];
    for (cc, shared) in cases {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("cache-control", *cc).unwrap();
        let got = policy().decide_authorized(&resp, true, now);
        assert_eq!(got != Decision::Skip("authorization"), *shared, "{cc}");
        // Without Authorization, the same answer is decided as ever.
        assert_eq!(
            policy().decide_authorized(&resp, false, now),
            policy().decide(&resp, now),
            "{cc}"
        );
    }
}

#[test]
fn before_s3_a_404_keeps_its_own_time_and_a_silent_200_the_default() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let p = Policy {
        plain_origin: false,
        ..policy()
    };
    for cc in ["max-age=9999", "no-store", "max-age=0"] {
        let mut resp = ResponseHeader::build(404, None).unwrap();
        resp.insert_header("cache-control", cc).unwrap();
        assert!(
            matches!(p.decide(&resp, now), Decision::Store { fresh_until, .. } if fresh_until == now + Duration::from_secs(10)),
            "{cc}"
        );
    }
    // And a 200 that says nothing is kept for the default lifetime.
    let resp = ResponseHeader::build(200, None).unwrap();
    assert!(
        matches!(p.decide(&resp, now), Decision::Store { fresh_until, .. } if fresh_until == now + Duration::from_secs(3600))
    );
}

#[test]
fn override_replaces_the_origin_but_not_the_rules() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let p = Policy {
        override_ttl: Some(Duration::from_secs(5)),
        ..policy()
    };
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("cache-control", "max-age=999").unwrap();
    assert!(
        matches!(p.decide(&resp, now), Decision::Store { fresh_until, .. } if fresh_until == now + Duration::from_secs(5))
    );
    let mut cookie = ResponseHeader::build(200, None).unwrap();
    cookie.insert_header("set-cookie", "a=b").unwrap();
    assert_eq!(p.decide(&cookie, now), Decision::Skip("set_cookie"));
    let mut not_found = ResponseHeader::build(404, None).unwrap();
    not_found.insert_header("x", "y").unwrap();
    assert!(
        matches!(p.decide(&not_found, now), Decision::Store { fresh_until, .. } if fresh_until == now + Duration::from_secs(10))
    );
}

#[test]
fn a_clock_an_hour_off_keeps_each_lifetime() {
    // The node's clock an hour behind, right, an hour ahead of the
    // origin's: every lifetime is the same, counted from the node's now.
    let origin_now = UNIX_EPOCH + Duration::from_secs(100_000);
    let headers: &[&[(&str, &str)]] = &[
        &[],
        &[("cache-control", "max-age=120")],
        &[
            ("date", "Fri, 02 Jan 1970 03:46:40 GMT"),
            ("expires", "Fri, 02 Jan 1970 03:56:40 GMT"),
        ],
    ];
    for (headers, lifetime) in headers.iter().zip([3600, 120, 600]) {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (n, v) in *headers {
            resp.insert_header(*n, *v).unwrap();
        }
        let hour = Duration::from_secs(3600);
        for (skew, now) in [
            ("behind", origin_now - hour),
            ("right", origin_now),
            ("ahead", origin_now + hour),
        ] {
            let s3 = Policy {
                plain_origin: false,
                ..policy()
            };
            match s3.decide(&resp, now) {
                Decision::Store { fresh_until, .. } => assert_eq!(
                    fresh_until.duration_since(now).unwrap(),
                    Duration::from_secs(lifetime),
                    "{headers:?}, clock {skew}"
                ),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn zero_not_found_ttl_means_not_stored() {
    let p = Policy {
        not_found_ttl: Duration::ZERO,
        ..policy()
    };
    let resp = ResponseHeader::build(404, None).unwrap();
    assert_eq!(
        p.decide(&resp, UNIX_EPOCH),
        Decision::Skip("not_found_ttl_zero")
    );
}
