//! Caching fields an origin addresses to CDNs rather than to browsers,
//! which take precedence over `Cache-Control` in the node's own storage
//! decision: `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control` (the
//! Edge Architecture Specification, as Fastly and Akamai read it). Both
//! stay in the answer: the next tier of the fleet reads them too, and
//! browsers ignore them.

use pingora_cache::cache_control::CacheControl;
use pingora_http::ResponseHeader;

/// The device token this node answers to in `Surrogate-Control`
/// (`max-age=60;cdn-node`), advertised to a plain origin in
/// `Surrogate-Capability`.
pub const SURROGATE_TOKEN: &str = "cdn-node";

/// The `Surrogate-Capability` value a request to a plain origin carries.
pub const SURROGATE_CAPABILITY: &str = "cdn-node=\"Surrogate/1.0\"";

/// `CDN-Cache-Control`'s directives when the answer has a non-empty one: a
/// cache that reads it uses it instead of `Cache-Control` and `Expires`
/// (RFC 9213 2.2).
pub fn cdn_cache_control(resp: &ResponseHeader) -> Option<CacheControl> {
    CacheControl::from_resp_headers_named("cdn-cache-control", resp)
        .filter(|cc| cc.directives.keys().any(|k| !k.as_str().is_empty()))
}

/// What `Surrogate-Control` tells this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Surrogate {
    /// `no-store` or `no-store-remote` (a CDN is remote from the origin).
    pub no_store: bool,
    /// `max-age=N` (an added `+M` stale allowance is not read), at most
    /// `u32::MAX` seconds.
    pub max_age: Option<u32>,
}

/// The `Surrogate-Control` directives addressed to every surrogate or to
/// this node's token; `None` when none is (or there is no such field). A
/// directive that does not read (`max-age =60`, `max-age=x`) is ignored.
pub fn surrogate_control(resp: &ResponseHeader) -> Option<Surrogate> {
    let mut found = None;
    let values = resp.headers.get_all("surrogate-control");
    let text = values.iter().filter_map(|v| v.to_str().ok());
    for directive in text.flat_map(|v| v.split(',')) {
        let mut parts = directive.split(';');
        let body = parts.next().unwrap_or_default().trim();
        let mut targets = parts.map(str::trim).peekable();
        if targets.peek().is_some() && !targets.any(|t| t.eq_ignore_ascii_case(SURROGATE_TOKEN)) {
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let seen: &mut Surrogate = found.get_or_insert_with(Surrogate::default);
        match (name.to_ascii_lowercase().as_str(), value) {
            ("no-store" | "no-store-remote", None) => seen.no_store = true,
            ("max-age", Some(value)) => match delta_seconds(value) {
                Some(secs) => seen.max_age = Some(secs),
                None => continue,
            },
            _ => continue,
        }
    }
    found.filter(|s: &Surrogate| s.no_store || s.max_age.is_some())
}

/// `N` or `N+M` in decimal digits only, `N` saturated at `u32::MAX`.
fn delta_seconds(value: &str) -> Option<u32> {
    let first = value.split('+').next()?;
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        first
            .parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(fields: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in fields {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    fn surrogate(no_store: bool, max_age: Option<u32>) -> Option<Surrogate> {
        Some(Surrogate { no_store, max_age })
    }

    #[test]
    fn surrogate_control_read_for_this_node() {
        let cases: &[(&[&str], Option<Surrogate>)] = &[
            (&[], None),
            (&["max-age=3600"], surrogate(false, Some(3600))),
            (&["MaX-aGe=3600"], surrogate(false, Some(3600))),
            (&["foobar, max-age=3600"], surrogate(false, Some(3600))),
            (&["max-age=3600+600"], surrogate(false, Some(3600))),
            (&["max-age=0"], surrogate(false, Some(0))),
            (
                &["max-age=2147483648"],
                surrogate(false, Some(2_147_483_648)),
            ),
            (&["max-age=99999999999"], surrogate(false, Some(u32::MAX))),
            (&["max-age =100"], None),
            (&["max-age= 100"], None),
            (&["max-age=-1"], None),
            (&["max-age"], None),
            (&["max-age=3600;cdn-node"], surrogate(false, Some(3600))),
            (&["max-age=3600;CDN-Node"], surrogate(false, Some(3600))),
            (&["max-age=3600;not-for-you"], None),
            (
                &["max-age=60;other, max-age=30;cdn-node"],
                surrogate(false, Some(30)),
            ),
            (&["no-store"], surrogate(true, None)),
            (&["no-store-remote"], surrogate(true, None)),
            (&["no-store;elsewhere"], None),
            (&["no-store", "max-age=60"], surrogate(true, Some(60))),
            (&["content=\"ESI/1.0\""], None),
            (&[""], None),
        ];
        for (values, want) in cases {
            let fields: Vec<(&str, &str)> =
                values.iter().map(|v| ("surrogate-control", *v)).collect();
            assert_eq!(surrogate_control(&answer(&fields)), *want, "{values:?}");
        }
    }

    #[test]
    fn cdn_cache_control_counts_when_it_says_something() {
        let cases: &[(&[&str], Option<Option<u32>>)] = &[
            (&[], None),
            (&[""], None),
            (&["max-age=60"], Some(Some(60))),
            (&["no-store"], Some(None)),
            (&["max-age=60", "s-maxage=5"], Some(Some(60))),
        ];
        for (values, want) in cases {
            let fields: Vec<(&str, &str)> =
                values.iter().map(|v| ("cdn-cache-control", *v)).collect();
            let got = cdn_cache_control(&answer(&fields)).map(|cc| cc.max_age().unwrap());
            assert_eq!(got, *want, "{values:?}");
        }
    }
}
