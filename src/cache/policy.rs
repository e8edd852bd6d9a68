//! What the node stores and for how long (RFC 9111): the origin's
//! `Cache-Control` and `Expires` when it sends them (or the fields it
//! addresses to CDNs, [`targeted`], in their place), configured defaults
//! when it does not (S3 rarely sends any), an optional override, a short
//! life for 404s, other statuses only as long as the origin says or a
//! heuristic allows, and never anything personal.

pub mod targeted;

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
        /// The `Age` it arrived with, when that reads (zero otherwise): the
        /// `Age` of a hit counts from it (RFC 9111 4.2.3, 5.1).
        upstream_age: Duration,
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
    /// [`Policy::decide`] for the answer to a request that carried the
    /// client's own `Authorization` to the origin (`authorized`): a shared
    /// cache stores it only when the origin says it may, with `public`,
    /// `s-maxage` or `must-revalidate` (RFC 9111 3.5).
    pub fn decide_authorized(
        &self,
        resp: &ResponseHeader,
        authorized: bool,
        now: SystemTime,
    ) -> Decision {
        let shared = || {
            CacheControl::from_resp_headers(resp).is_some_and(|cc| {
                cc.public() || cc.must_revalidate() || cc.s_maxage().ok().flatten().is_some()
            })
        };
        if authorized && !shared() {
            return Decision::Skip("authorization");
        }
        self.decide(resp, now)
    }

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
        let (age, upstream_age) = match age_field(resp) {
            Age::Absent => (Duration::ZERO, Duration::ZERO),
            Age::Valid(age) => (age, age),
            Age::Invalid => (Duration::MAX, Duration::ZERO),
        };
        // A CDN-Cache-Control governs in place of Cache-Control and Expires
        // (RFC 9213 2.2).
        let cdn_targeted = targeted::cdn_cache_control(resp);
        let expires_counts = cdn_targeted.is_none();
        let cc = cdn_targeted.or_else(|| CacheControl::from_resp_headers(resp));
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
                upstream_age,
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
        // Surrogate-Control addressed to this node comes before either.
        if let Some(surrogate) = targeted::surrogate_control(resp) {
            if surrogate.no_store {
                return Decision::Skip("no_store");
            }
            if let Some(secs) = surrogate.max_age {
                return store(Duration::from_secs(u64::from(secs)));
            }
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
        if expires_counts && resp.headers.contains_key("expires") {
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
mod tests;
