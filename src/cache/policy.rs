//! What the node stores and for how long (RFC 9111): the origin's
//! `Cache-Control` and `Expires` when it sends them, configured defaults
//! when it does not (S3 rarely sends any), an optional override, a short
//! life for 404s, other statuses only as long as the origin says or a
//! heuristic allows, and never anything personal.

use std::time::{Duration, SystemTime};

use pingora_cache::cache_control::CacheControl;
use pingora_http::ResponseHeader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub default_ttl: Duration,
    /// When set, replaces whatever the origin says about freshness.
    pub override_ttl: Option<Duration>,
    pub not_found_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// The origin is a web server that says how long its answers keep (a
    /// plain HTTP origin): a 404's own `Cache-Control` and `Expires` count,
    /// and a 200 that gives no freshness is kept only on the heuristic of
    /// its `Last-Modified` (revalidated on every use when it has just an
    /// `ETag`; not kept with neither). Before S3, which sends no caching
    /// fields, a 404 is kept for `not_found_ttl` whatever it says (the node
    /// answers S3's 404 with its own) and a 200 for `default_ttl`.
    pub plain_origin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Store {
        fresh_until: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
    },
    /// Not stored; the reason is for logs.
    Skip(&'static str),
}

/// A header's value as an HTTP date, if it is a valid one.
fn http_date(resp: &ResponseHeader, name: &str) -> Option<SystemTime> {
    let value = resp.headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// The status codes RFC 9110 (15.1) lets a cache keep on a heuristic
/// lifetime, besides 200 and 404, which the node keeps on its defaults.
fn heuristically_cacheable(status: u16) -> bool {
    matches!(status, 203 | 204 | 300 | 301 | 308 | 405 | 410 | 414 | 501)
}

/// The final status codes whose meaning RFC 9110 defines.
fn understood(status: u16) -> bool {
    matches!(
        status,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// The time an answer spent in caches before this node (its `Age`; none
/// when it has none or a bad one).
pub fn upstream_age(resp: &ResponseHeader) -> Duration {
    match age_field(resp) {
        Age::Valid(age) => age,
        Age::Absent | Age::Invalid => Duration::ZERO,
    }
}

/// What an answer's `Age` says.
enum Age {
    Absent,
    /// One field line of digits (RFC 9111 5.1: delta-seconds).
    Valid(Duration),
    /// Anything else (several lines, a list, a sign, a fraction, a
    /// parameter): nobody can tell how old the answer is.
    Invalid,
}

fn age_field(resp: &ResponseHeader) -> Age {
    let mut lines = resp.headers.get_all("age").iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return if resp.headers.contains_key("age") {
            Age::Invalid
        } else {
            Age::Absent
        };
    };
    let text = line.as_bytes().trim_ascii();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Age::Invalid;
    }
    // More seconds than a u64 holds: older than anything.
    let seconds = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    Age::Valid(Duration::from_secs(seconds))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Policy {
    pub fn decide(&self, resp: &ResponseHeader, now: SystemTime) -> Decision {
        let status = resp.status.as_u16();
        // 200 and 404 are stored whatever the origin says; any other final
        // answer only for as long as it says (RFC 9111 3), but a partial
        // one and a 304, which are not whole answers.
        let assumed_storable = matches!(status, 200 | 404);
        if !assumed_storable && (status < 200 || status == 206 || status == 304) {
            return Decision::Skip("status");
        }
        if resp.headers.contains_key("set-cookie") {
            return Decision::Skip("set_cookie");
        }
        // An answer chosen by request fields nobody can name (RFC 9111
        // 4.1) cannot be served from a store keyed on the target alone.
        if resp
            .headers
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|f| f.trim() == "*"))
        {
            return Decision::Skip("vary");
        }
        // Time the answer already spent in caches upstream (a shield's, a
        // web server's) counts against its freshness (RFC 9111 4.2.3); an
        // `Age` that does not read leaves it stale on arrival.
        let age = match age_field(resp) {
            Age::Absent => Duration::ZERO,
            Age::Valid(age) => age,
            Age::Invalid => Duration::MAX,
        };
        let cc = CacheControl::from_resp_headers(resp);
        // must-understand: stored only by a cache that knows what the status
        // means, which then disregards no-store (RFC 9111 5.2.2.3).
        let must_understand = cc.as_ref().is_some_and(|cc| cc.has_key("must-understand"));
        if must_understand && !understood(status) {
            return Decision::Skip("must_understand");
        }
        // The configured stale windows stand in for directives the origin
        // did not send, unless it forbids serving stale without validation
        // (RFC 9111 4.2.4: no-cache, must-revalidate, proxy-revalidate, or
        // s-maxage, which applies to a shared cache). Its own
        // stale-while-revalidate and stale-if-error always count.
        let forbids_stale = cc.as_ref().is_some_and(|cc| {
            cc.no_cache()
                || cc.must_revalidate()
                || cc.proxy_revalidate()
                || cc.s_maxage().ok().flatten().is_some()
        });
        let default_window = |d: Duration| if forbids_stale { 0 } else { secs(d) };
        let (swr, sie) = match &cc {
            Some(cc) => (
                cc.stale_while_revalidate()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| default_window(self.stale_while_revalidate)),
                cc.stale_if_error()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| default_window(self.stale_if_error)),
            ),
            None => (secs(self.stale_while_revalidate), secs(self.stale_if_error)),
        };
        let store = |ttl: Duration| {
            if ttl.is_zero() && status == 404 {
                return Decision::Skip("not_found_ttl_zero");
            }
            Decision::Store {
                fresh_until: now + ttl.saturating_sub(age),
                stale_while_revalidate_sec: swr,
                stale_if_error_sec: sie,
            }
        };
        // What the node assumes when the origin says nothing: a 200 is kept
        // for the default lifetime, a 404 briefly; another status RFC 9110
        // calls heuristically cacheable (or any marked `public`) for a
        // tenth of the time since its Last-Modified, at most the default
        // lifetime (RFC 9111 4.2.2), and without one not at all.
        let heuristic = || {
            let date = http_date(resp, "date").unwrap_or(now);
            http_date(resp, "last-modified")
                .and_then(|modified| date.duration_since(modified).ok())
                .map(|since| (since / 10).min(self.default_ttl))
                .filter(|ttl| !ttl.is_zero())
        };
        let assumed = match status {
            200 if self.plain_origin => {
                heuristic().or_else(|| resp.headers.contains_key("etag").then_some(Duration::ZERO))
            }
            200 => Some(self.default_ttl),
            404 => Some(self.not_found_ttl),
            _ if heuristically_cacheable(status) || cc.as_ref().is_some_and(|cc| cc.public()) => {
                heuristic()
            }
            _ => None,
        };
        if status == 404 && !self.plain_origin {
            return store(self.not_found_ttl);
        }
        if let Some(ttl) = self.override_ttl
            && matches!(status, 200 | 404)
        {
            return store(if status == 404 {
                self.not_found_ttl
            } else {
                ttl
            });
        }
        if let Some(cc) = &cc {
            if cc.no_store() && !must_understand {
                return Decision::Skip("no_store");
            }
            if cc.private() {
                return Decision::Skip("private");
            }
            if cc.no_cache() {
                // Stored, but revalidated before every use.
                return store(Duration::ZERO);
            }
            let max_age = cc
                .s_maxage()
                .ok()
                .flatten()
                .or_else(|| cc.max_age().ok().flatten());
            if let Some(age) = max_age {
                return store(Duration::from_secs(u64::from(age)));
            }
        }
        if resp.headers.contains_key("expires") {
            // The lifetime is Expires minus the origin's Date (RFC 9111
            // 4.2.1), whatever the node's own clock says; the node's clock
            // stands in for a missing Date. An invalid Expires means
            // "already expired" (5.3).
            let date = http_date(resp, "date").unwrap_or(now);
            let ttl = http_date(resp, "expires")
                .and_then(|t| t.duration_since(date).ok())
                .unwrap_or(Duration::ZERO);
            return store(ttl);
        }
        match assumed {
            Some(ttl) => store(ttl),
            None if status == 200 => Decision::Skip("no_freshness"),
            None => Decision::Skip("status"),
        }
    }
}

#[cfg(test)]
mod tests {
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
                },
                Err(reason) => Decision::Skip(reason),
            };
            assert_eq!(got, want, "{status} {headers:?}");
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
}
