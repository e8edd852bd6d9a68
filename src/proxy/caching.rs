//! The cache phases of the request path: whether a request uses the cache,
//! its key and the variant it selects, whether an origin answer is stored,
//! and when stale is served.

use std::time::SystemTime;

use pingora::prelude::*;
use pingora_cache::key::HashBinary;
use pingora_cache::{CacheKey, CacheMeta, NoCacheReason, RespCacheable, VarianceBuilder};
use pingora_http::{RequestHeader, ResponseHeader};

use super::admit::Admitted;
use super::ctx::RequestCtx;
use crate::cache::engine::Engine;
use crate::cache::key;
use crate::cache::policy::Decision;

/// Turns the cache on for an admitted request.
pub fn enable(session: &mut Session, engine: &Engine) {
    session.cache.enable(
        engine.store,
        Some(engine.eviction),
        None,
        Some(engine.lock),
        None,
    );
    let max = usize::try_from(engine.config.max_object_size).unwrap_or(usize::MAX);
    session.cache.set_max_file_size_bytes(max);
}

pub fn key(admitted: &Admitted) -> CacheKey {
    key::object(&admitted.path, &admitted.query)
}

/// Whether an origin answer is stored, and its freshness. `authorized`:
/// the request carried the client's own `Authorization` to the origin.
pub fn cacheable(engine: &Engine, resp: &ResponseHeader, authorized: bool) -> RespCacheable {
    let now = SystemTime::now();
    match engine
        .config
        .policy
        .decide_authorized(resp, authorized, now)
    {
        Decision::Store {
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            upstream_age,
        } => {
            let mut meta = CacheMeta::new(
                fresh_until,
                now,
                stale_while_revalidate_sec,
                stale_if_error_sec,
                resp.clone(),
            );
            // A hit's `Age` counts the time spent in caches upstream too.
            if let Some(epoch) = now
                .checked_sub(upstream_age)
                .filter(|_| !upstream_age.is_zero())
            {
                meta.set_epoch_override(epoch);
            }
            RespCacheable::Cacheable(meta)
        }
        Decision::Skip(_) => RespCacheable::Uncacheable(NoCacheReason::OriginNotCache),
    }
}

/// An answer from a plain HTTP origin or a node of the fleet, as it is
/// received: a 200 the cache keeps says it takes ranges (added once, before
/// it is stored), and a `304` to a revalidation is kept for
/// `response_cache_filter`, which updates the stored answer with it.
pub fn received_unsigned(session: &Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
    if session.cache.enabled() && resp.status == http::StatusCode::OK {
        crate::range::advertise(resp);
    }
    if resp.status == http::StatusCode::NOT_MODIFIED && session.cache.maybe_cache_meta().is_some() {
        ctx.origin.not_modified = Some(Box::new(resp.clone()));
    }
}

/// Fields of a `304` that do not replace the stored answer's (RFC 9111
/// 3.2): those describing the stored body (`Content-Length`, its encoding
/// and range), its validator, its variants (the stored copy's key does not
/// change over a revalidation), and what the node writes itself.
const NOT_UPDATED: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "content-md5",
    "transfer-encoding",
    "etag",
    "vary",
    "connection",
];

/// The stored answer's header updated by a revalidation's `304` (RFC 9111
/// 4.3.4): each field the `304` carries replaces the stored one of that
/// name, but for [`NOT_UPDATED`].
pub fn updated(stored: &ResponseHeader, not_modified: &ResponseHeader) -> ResponseHeader {
    let mut header = stored.clone();
    // Validated just now: what the stored copy spent upstream no longer
    // counts; the 304's own `Age` does.
    header.remove_header(&http::header::AGE);
    let mut replaced: Vec<&http::HeaderName> = Vec::new();
    for (name, value) in not_modified.headers.iter() {
        if NOT_UPDATED.contains(&name.as_str()) {
            continue;
        }
        if !replaced.contains(&name) {
            replaced.push(name);
            header.remove_header(name);
        }
        // Valid already: it came in a header.
        let _ = header.append_header(name.clone(), value.clone());
    }
    header
}

/// Fields a stored answer may vary on that do not select a variant here:
/// the origin is always asked for the identity encoding, so one copy serves
/// every `Accept-Encoding`.
const NOT_VARYING: &[&str] = &["accept-encoding"];

/// The variant of a stored answer that `req` selects (RFC 9111 4.1): the
/// request's values of the fields the answer's `Vary` names, each name's
/// lines joined in order and [`normalised`], a missing field told apart
/// from an empty one.
/// `None` when the answer varies on nothing here (an answer with
/// `Vary: *` is never stored).
pub fn variance(resp: &http::HeaderMap, req: &RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = resp
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && !NOT_VARYING.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let mut variance = VarianceBuilder::new();
    for name in names {
        let mut lines = req.headers.get_all(name.as_str()).iter().peekable();
        let value = if lines.peek().is_none() {
            // Not a byte string any field line can hold.
            b"\n".to_vec()
        } else {
            normalised(&name, lines.map(|v| v.as_bytes()))
        };
        variance.add_owned_name_value(name, value);
    }
    variance.finalize()
}

/// A selecting field's lines as one list (RFC 9110 5.3) with the
/// whitespace around its commas and its empty elements dropped (5.6.1),
/// which change nothing a server may read; `Accept-Language`'s tags in
/// lower case, as they compare (RFC 4647 2). The order of the elements
/// stays: it can break a tie between equal preferences.
fn normalised<'a>(name: &str, lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        for element in line.split(|b| *b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(element);
        }
    }
    if name == "accept-language" {
        out.make_ascii_lowercase();
    }
    out
}

/// Stale is served while revalidating in the background (within the
/// stored stale-while-revalidate window, which Pingora checks), and when the
/// origin fails (within stale-if-error).
pub fn serve_stale(error: Option<&Error>) -> bool {
    match error {
        None => true,
        Some(e) => {
            e.esource() == &ErrorSource::Upstream
                || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
        for (name, value) in fields {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn answer(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    /// (the answer's Vary lines, two requests' fields, whether both select
    /// the same variant)
    type VaryCase = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
        bool,
    );

    const VARY: &[VaryCase] = &[
        (
            &["Accept-Language"],
            &[("accept-language", "en")],
            &[("accept-language", "en")],
            true,
        ),
        (
            &["Accept-Language"],
            &[("accept-language", "en")],
            &[("accept-language", "fr")],
            false,
        ),
        // Absent is not the same as empty.
        (&["Accept-Language"], &[], &[("accept-language", "")], false),
        (&["Accept-Language"], &[], &[], true),
        // Names in any case and order, on one line or several.
        (
            &["Foo, Bar"],
            &[("foo", "1"), ("bar", "2")],
            &[("bar", "2"), ("foo", "1")],
            true,
        ),
        (
            &["foo", "BAR"],
            &[("foo", "1"), ("bar", "2")],
            &[("foo", "1"), ("bar", "3")],
            false,
        ),
        // Several lines of one field count in their order.
        (
            &["Foo"],
            &[("foo", "1"), ("foo", "2")],
            &[("foo", "1, 2")],
            true,
        ),
        (
            &["Foo"],
            &[("foo", "1"), ("foo", "2")],
            &[("foo", "2"), ("foo", "1")],
            false,
        ),
        // Whitespace around commas and empty elements change nothing; the
        // order does.
        (&["Foo"], &[("foo", "a, b")], &[("foo", " a ,\tb,, ")], true),
        (&["Foo"], &[("foo", "a b")], &[("foo", "a  b")], false),
        (&["Foo"], &[("foo", "")], &[("foo", " , ")], true),
        // Language tags compare in any case; other values as they are.
        (
            &["Accept-Language"],
            &[("accept-language", "en-GB, de;q=0.5")],
            &[("accept-language", "EN-gb,DE;Q=0.5")],
            true,
        ),
        (
            &["Accept-Language"],
            &[("accept-language", "en, de")],
            &[("accept-language", "de, en")],
            false,
        ),
        (&["Foo"], &[("foo", "a")], &[("foo", "A")], false),
        // Fields the answer does not name do not count.
        (
            &["Foo"],
            &[("foo", "1"), ("bar", "x")],
            &[("foo", "1"), ("bar", "y")],
            true,
        ),
        // The origin is always asked for the identity encoding.
        (
            &["Accept-Encoding"],
            &[("accept-encoding", "gzip")],
            &[("accept-encoding", "br")],
            true,
        ),
    ];

    #[test]
    fn a_request_selects_the_variant_its_named_fields_give() {
        for (vary, a, b, same) in VARY {
            let lines: Vec<(&str, &str)> = vary.iter().map(|v| ("vary", *v)).collect();
            let resp = answer(200, &lines);
            let (va, vb) = (
                variance(&resp.headers, &request(a)),
                variance(&resp.headers, &request(b)),
            );
            assert_eq!(va == vb, *same, "{vary:?} {a:?} {b:?}");
        }
        // No Vary, or one naming only what selects nothing: no variance.
        assert_eq!(
            variance(&answer(200, &[]).headers, &request(&[("foo", "1")])),
            None
        );
        let identity = answer(200, &[("vary", "accept-encoding")]);
        assert_eq!(variance(&identity.headers, &request(&[])), None);
    }

    #[test]
    fn a_304_updates_the_stored_fields_but_those_of_the_body() {
        let stored = answer(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "15"),
                ("etag", "\"a\""),
                ("x-test", "old"),
                ("x-kept", "kept"),
                ("age", "30"),
                ("set-cookie2", "a=b"),
                ("set-cookie2", "c=d"),
            ],
        );
        let not_modified = answer(
            304,
            &[
                ("content-type", "text/plain;charset=utf-8"),
                ("content-length", "0"),
                ("etag", "\"b\""),
                ("content-md5", "x"),
                ("x-test", "new"),
                ("set-cookie2", "a=c"),
            ],
        );
        let got = updated(&stored, &not_modified);
        let values = |name: &str| -> Vec<&str> {
            got.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        let cases: &[(&str, &[&str])] = &[
            ("content-type", &["text/plain;charset=utf-8"]),
            ("x-test", &["new"]),
            ("set-cookie2", &["a=c"]),
            ("x-kept", &["kept"]),
            ("content-length", &["15"]),
            ("etag", &["\"a\""]),
            ("content-md5", &[]),
            // Validated just now: the stored Age no longer counts.
            ("age", &[]),
        ];
        for (name, want) in cases {
            assert_eq!(values(name), *want, "{name}");
        }
        assert_eq!(got.status, 200);
    }
}
