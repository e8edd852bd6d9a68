//! Fresh hits on small objects held in memory, answered in `request_filter`
//! without entering Pingora's cache phases (its cache state machine, a meta
//! and a hit handler per request, a second copy of the header).
//!
//! The answer is the one Pingora's hit path gives, field for field and in
//! the same order: the stored header with `Age` (`cache_hit_header`), then
//! `Accept-Ranges` (the range filter), then the cache status and a renewed
//! token (`response_filter`); the eviction manager is told of the access as
//! `HttpCache::cache_found` tells it (in batches for a worker thread's own
//! copy of a hot object, see the store's `thread_copies`). The fields every
//! hit of an object carries are added once per copy (`prepare`); a hit sets
//! `Age` in its place and appends a renewed token.
//!
//! Whatever this path does not handle takes Pingora's: a `Range` (but on a
//! copy of a forwarded object, [`crate::cluster::copies`]) or conditional
//! request, a stored status other than 200, a body without
//! `Content-Length`, and every object the store's `memory_hit` declines (not
//! in memory, not fresh, a fill in progress, variance).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_http::{RequestHeader, ResponseHeader};

use super::lane::Form;
use crate::answer;
use crate::auth::Renewed;
use crate::cache::engine::Engine;
use crate::cache::status::CacheStatus;
use crate::cache::store::{Accesses, MemoryHit};

/// Whether the request is one this path may answer: the whole object,
/// unconditionally.
pub(super) fn plain(req: &RequestHeader) -> bool {
    unconditional(req) && !req.headers.contains_key(RANGE)
}

/// A GET or HEAD without conditionals: what a copy of a forwarded object
/// answers, ranges included ([`send`]).
pub(super) fn unconditional(req: &RequestHeader) -> bool {
    (req.method == http::Method::GET || req.method == http::Method::HEAD)
        && !req.headers.contains_key(IF_NONE_MATCH)
        && !req.headers.contains_key(IF_MODIFIED_SINCE)
}

/// Whether a stored answer is one this path may send.
pub(super) fn sendable(header: &ResponseHeader) -> bool {
    header.status == http::StatusCode::OK && header.headers.contains_key(CONTENT_LENGTH)
}

/// What every hit of a stored header carries, added once per copy of it:
/// `Age` (here, in its place; each hit sets its value), `Accept-Ranges`
/// when missing (no Range is asked), then the cache status.
pub(super) fn prepare(engine: &'static Engine, header: &mut ResponseHeader) -> Result<()> {
    header.insert_header(AGE, 0)?;
    header.set_version(http::Version::HTTP_11);
    crate::range::advertise(header);
    let name = engine.config.status_header.as_deref();
    answer::add_cache_fields(header, name, CacheStatus::Hit, None)
}

/// The object held in memory for the request, when this path may answer
/// it; `None` when the request must take another route.
pub fn find(
    engine: &'static Engine,
    req: &RequestHeader,
    key: &CacheKey,
) -> Result<Option<MemoryHit>> {
    if !plain(req) {
        return Ok(None);
    }
    held(engine, key)
}

/// The object of `key` when memory holds it fresh and whole, prepared as
/// every hit of it is, whatever the request asks (a route that answers
/// ranges itself). Its accesses are the caller's to tell ([`told`]).
pub fn held(engine: &'static Engine, key: &CacheKey) -> Result<Option<MemoryHit>> {
    engine
        .store
        .memory_hit(key, SystemTime::now(), sendable, |h| prepare(engine, h))
}

/// Tells the eviction manager of a memory hit's accesses, as Pingora's
/// hit path does.
pub fn told(engine: &'static Engine, hit: &MemoryHit) {
    if let Some(accesses) = &hit.accesses {
        tell(engine, accesses);
    }
}

/// Tells the eviction manager of `accesses` to a stored object.
pub(super) fn tell(engine: &'static Engine, accesses: &Accesses) {
    engine
        .eviction
        .access_counted(&accesses.entry, accesses.weight, accesses.requests);
}

/// What each hit of a prepared header sets: its `Age`, then a renewed
/// token.
pub(super) fn stamp(
    header: &mut ResponseHeader,
    age: Duration,
    renewal: Option<&Renewed>,
) -> Result<()> {
    header.insert_header(AGE, age.as_secs())?;
    if let Some(renewed) = renewal {
        header.append_header(renewed.name.clone(), renewed.value.as_str())?;
    }
    Ok(())
}

/// Answers with `hit`, telling the eviction manager of the access; cut to
/// the request's `Range` when it has one (a copy of a forwarded object).
pub async fn send(
    engine: &'static Engine,
    session: &mut Session,
    hit: MemoryHit,
    renewal: Option<&Renewed>,
) -> Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let (header, body) = answer(engine, hit, renewal, Form::Http1)?;
    if session.req_header().headers.contains_key(RANGE) {
        return send_ranged(session, header, body).await;
    }
    answer::send_whole(session, header, body, head).await
}

/// The whole answer of `hit`, its access told: the stored header with its
/// `Age` and a renewed token, and the body.
pub fn answer(
    engine: &'static Engine,
    hit: MemoryHit,
    renewal: Option<&Renewed>,
    form: Form,
) -> Result<(ResponseHeader, Bytes)> {
    told(engine, &hit);
    let mut header = header_to_edit(hit.header, form);
    stamp(&mut header, hit.age, renewal)?;
    Ok((header, hit.body))
}

/// A held copy's header to edit for one answer. HTTP/2 writes names in
/// lower case: the fields are copied without the HTTP/1 spelling of their
/// names, one map instead of two.
pub fn header_to_edit(header: Arc<ResponseHeader>, form: Form) -> ResponseHeader {
    match form {
        Form::Http1 => Arc::unwrap_or_clone(header),
        Form::Http2 => ResponseHeader::from(header.as_owned_parts()),
    }
}

/// Answers the request's `Range` from a whole body: 206 (single or
/// multipart), 416, or the whole object.
async fn send_ranged(session: &mut Session, mut header: ResponseHeader, body: Bytes) -> Result<()> {
    let range = crate::range::apply(session.req_header(), &mut header);
    let (parts, framing) = crate::range::multipart::parts(&range, body.len() as u64);
    let head = session.req_header().method == http::Method::HEAD;
    let end = head || parts.is_empty();
    session
        .write_response_header(Box::new(header), end)
        .await
        .map_err(|e| e.into_down())?;
    if end {
        return Ok(());
    }
    for r in parts {
        if let Some(m) = &framing {
            write(session, m.part_head(&r)).await?;
        }
        write(session, body.slice(r.start as usize..r.end as usize)).await?;
    }
    if let Some(m) = &framing {
        write(session, m.tail()).await?;
    }
    session
        .write_response_body(None, true)
        .await
        .map_err(|e| e.into_down())
}

async fn write(session: &mut Session, chunk: Bytes) -> Result<()> {
    session
        .write_response_body(Some(chunk), false)
        .await
        .map_err(|e| e.into_down())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/v/a.mp4", None).unwrap();
        for (name, value) in fields {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn only_whole_unconditional_requests_qualify() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            ("GET", &[], true),
            ("HEAD", &[], true),
            ("GET", &[("accept", "*/*"), ("if-range", "\"x\"")], true),
            ("GET", &[("range", "bytes=0-1")], false),
            ("HEAD", &[("range", "bytes=0-1")], false),
            ("GET", &[("if-none-match", "\"x\"")], false),
            (
                "GET",
                &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
                false,
            ),
            ("POST", &[], false),
        ];
        for (method, fields, want) in cases {
            assert_eq!(
                plain(&request(method, fields)),
                *want,
                "{method} {fields:?}"
            );
        }
    }

    #[test]
    fn only_whole_stored_answers_qualify() {
        let build = |status: u16, fields: &[(&str, &str)]| {
            let mut h = ResponseHeader::build(status, None).unwrap();
            for (name, value) in fields {
                h.append_header(name.to_string(), *value).unwrap();
            }
            h
        };
        assert!(sendable(&build(200, &[("content-length", "5")])));
        assert!(!sendable(&build(200, &[])), "no length");
        assert!(!sendable(&build(404, &[("content-length", "5")])));
        assert!(!sendable(&build(206, &[("content-length", "5")])));
    }
}
