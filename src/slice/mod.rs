//! Slice caching of large objects.
//!
//! An object larger than `cache.slice_threshold` is never downloaded whole:
//! the node learns its length and version (ETag) with an origin HEAD or
//! probe GET (below), keeps that as a body-less record in the store, and
//! answers every GET and HEAD for it itself, reading fixed-size slices from
//! the disk store and fetching the missing ones with signed Range GETs
//! pinned to the recorded ETag by `If-Match`. Slices live in the same
//! store as whole objects (same bounds, eviction, purge) under keys derived
//! from the object's (`cache::key::slice`).
//!
//! Every cold GET or HEAD (no whole object and no fresh record in the store)
//! starts by asking the origin, once per object however many requests
//! arrive together. A plain GET (no `Range`, no conditions), or a GET whose
//! one range starts inside the first slice, sends a probe GET of the first
//! slice (`slice_size` bytes) rather than the HEAD: its 206 gives the
//! length and ETag (the record). An object no longer than a slice comes
//! whole in it, so it is stored and answered with that one origin request;
//! for a sliced object the answer's bytes are slice 0, stored as they come
//! like any slice fetch. Other requests send the HEAD. Objects at or below
//! the threshold not brought whole go the ordinary way (the probe's bytes
//! are dropped), and their record spares later requests the HEAD or probe.
//!
//! Concurrent requests for one slice share one fetch: the first starts it,
//! the others wait until its fill is visible and then read it as it is
//! written. A request seeking into the middle of a slice nobody fetches
//! yet splits the fetch at its offset and gets its bytes straight from the
//! origin (`fetch`), so its first byte costs the same wherever it lands.
//! After each slice served, the next `read_ahead` slices are fetched in the
//! background when the reading looks sequential (`read_ahead`).
//!
//! One version per response: slice keys carry a tag of the ETag, and a slice
//! fetch that finds another version (412, another ETag or length) drops the
//! record and every slice of the object. Before the response header is
//! sent the request starts over with the new version; after it, the
//! connection is closed short of the promised length, never stitching two
//! versions.
//!
//! Where each part lives: `learn` (the record: a HEAD or probe GET, shared
//! by concurrent requests), `respond` (writing an answer from slices),
//! `inflight` (one fetch per slice), `read_ahead`, and `fetch` (the origin's
//! and the store's side of a fetch).

mod fetch;
mod inflight;
mod info;
mod learn;
mod read_ahead;
mod respond;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pingora::connectors::http::Connector;
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::watch;

use crate::auth::Renewed;
use crate::cache::engine::Engine;
use crate::cache::settings::SliceConfig;
use crate::cache::status::CacheStatus;
use crate::metrics::Metrics;
use crate::origin::{Origin, OriginError};
use crate::refusal::Refusal;
use inflight::FetchState;
use info::ObjectInfo;
use learn::Learned;
use read_ahead::ReadAhead;
use respond::Failure;

/// How many object records are kept decoded in memory.
const RECORD_MEMORY: usize = 4096;

/// Process-wide slice state, built once at start-up.
pub struct Slicer {
    pub config: SliceConfig,
    connector: Connector,
    /// Slice fetches under way, by slice key.
    inflight: Mutex<HashMap<String, watch::Receiver<FetchState>>>,
    /// Origin HEADs and probe GETs under way, by the object's primary key.
    learning: Mutex<HashMap<String, watch::Receiver<Option<Learned>>>>,
    /// Decoded records, by primary key; the store's copy stays the truth
    /// (a record is used only while the store still holds one).
    records: Mutex<HashMap<String, Arc<ObjectInfo>>>,
    read_ahead: Mutex<ReadAhead>,
}

/// One client request for a possibly sliced object.
#[derive(Clone)]
struct Request {
    engine: &'static Engine,
    slicer: &'static Slicer,
    origin: Arc<Origin>,
    metrics: Arc<Metrics>,
    path: String,
    query: String,
    primary: String,
    /// The client request's `CDN-Loop` entries, carried by the fetches it
    /// starts, so that a loop through the fleet is seen on them too.
    hops: Option<http::HeaderValue>,
}

/// What `serve` did.
pub enum Served {
    /// Not a sliced object: the ordinary cache path answers.
    Pass,
    /// Answered; the cache status for the log and metrics.
    Done(CacheStatus),
    /// The origin answered the request that learns the object with an
    /// error: the caller answers with `refusal` (nothing was sent yet).
    Refused(OriginRefused),
}

/// An origin error answer (any but 404) to a HEAD or probe GET, shared by
/// every request that waited for it: each is answered with it, and none
/// asks the origin again.
#[derive(Debug, Clone)]
pub struct OriginRefused {
    /// The client's answer (502).
    pub refusal: Refusal,
    /// The metric label of the failure.
    pub kind: OriginError,
    /// The origin's status.
    pub status: u16,
    /// S3's error code, from the error document of a probe GET.
    pub s3_code: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slicer {
    pub fn new(config: SliceConfig) -> Slicer {
        Slicer {
            config,
            connector: Connector::new(None),
            inflight: Mutex::new(HashMap::new()),
            learning: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(ReadAhead::default()),
        }
    }

    fn remember_record(&self, primary: &str, info: Arc<ObjectInfo>) {
        let mut records = lock(&self.records);
        if records.len() >= RECORD_MEMORY && !records.contains_key(primary) {
            records.clear();
        }
        records.insert(primary.to_string(), info);
    }

    fn forget_record(&self, primary: &str) {
        lock(&self.records).remove(primary);
    }
}

/// What the slicer works with: its own state, the cache, the origin and
/// the metrics.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    pub slicer: &'static Slicer,
    pub engine: &'static Engine,
    pub origin: &'a Arc<Origin>,
    pub metrics: &'a Arc<Metrics>,
}

/// The object an admitted request asks for.
pub struct Asked<'a> {
    /// Its cache key (`cache::key::object` of `path` and `query`).
    pub key: &'a CacheKey,
    /// The canonical path and query.
    pub path: &'a str,
    pub query: &'a str,
    /// A renewed token for the response.
    pub renewal: Option<&'a Renewed>,
    /// The request wants a manifest given its token: one the probe brings
    /// whole goes the ordinary way, which gives it the token.
    pub manifest_token: bool,
}

fn key_text(key: &CacheKey) -> &str {
    key.primary_key_str().unwrap_or_default()
}

/// Answers a GET or HEAD for a sliced object, or says `Pass`.
///
/// A whole object in the store goes the ordinary way at once. Otherwise the
/// object's record says what it is; without a fresh one, the origin is
/// asked (once per object however many requests arrive together): a plain
/// GET, or one ranged inside the first slice, sends a probe GET of the
/// first slice, which brings a small object whole (stored, and answered at
/// once when the GET is plain), others a HEAD. Large objects are then
/// served from slices, small ones by the ordinary path.
/// `asked.renewal` is added to every response written here.
pub async fn serve(parts: Parts<'_>, session: &mut Session, asked: Asked<'_>) -> Result<Served> {
    let Parts {
        slicer,
        engine,
        origin,
        metrics,
    } = parts;
    let Asked {
        key,
        path,
        query,
        renewal,
        manifest_token,
    } = asked;
    let method = session.req_header().method.clone();
    if method != http::Method::GET && method != http::Method::HEAD {
        return Ok(Served::Pass);
    }
    if engine.store.contains(key) {
        return Ok(Served::Pass);
    }
    let primary = key_text(key).to_string();
    let req = Request {
        engine,
        slicer,
        origin: origin.clone(),
        metrics: metrics.clone(),
        path: path.to_string(),
        query: query.to_string(),
        primary,
        hops: hops_of(session.req_header()),
    };
    let plain = plain_get(session.req_header());
    for _attempt in 0..2 {
        let (info, known) = match req.record().await {
            Some(info) => (info, true),
            None => match req
                .learn_shared(plain || first_slice_range(session.req_header(), slicer.config.size))
                .await
            {
                Learned::Object(info) => (info, false),
                Learned::Whole(whole) => {
                    // A GET with a range or conditions: the ordinary path.
                    if (method != http::Method::HEAD && !plain)
                        || (manifest_token && crate::manifest::is_manifest_answer(&whole.header))
                    {
                        return Ok(Served::Pass);
                    }
                    // Learnt with `Accept-Ranges` (`range::advertise`); no
                    // range here.
                    let mut header = whole.header.clone();
                    add_cache_fields(engine, &mut header, CacheStatus::Miss, renewal);
                    let head_only = method == http::Method::HEAD;
                    let body = whole.body.clone();
                    crate::answer::send_whole(session, header, body, head_only).await?;
                    return Ok(Served::Done(CacheStatus::Miss));
                }
                Learned::Filling(header, len, done) => {
                    if manifest_token && crate::manifest::is_manifest_answer(&header) {
                        return Ok(Served::Pass);
                    }
                    let fill = (&*header, len, done);
                    return Ok(match req.respond_fill(session, fill, renewal).await? {
                        true => Served::Done(CacheStatus::Miss),
                        // Evicted already: the ordinary path fetches it.
                        false => Served::Pass,
                    });
                }
                Learned::Pass => return Ok(Served::Pass),
                Learned::Refused(refused) => return Ok(Served::Refused((*refused).clone())),
                Learned::TimedOut(why) => {
                    return Err(Error::explain(ErrorType::ReadTimedout, why).into_up());
                }
            },
        };
        let sliced = info.len > slicer.config.threshold;
        if method == http::Method::HEAD {
            let mut header = info.client_header();
            crate::range::apply(session.req_header(), &mut header);
            let status = if known {
                CacheStatus::Hit
            } else {
                CacheStatus::Miss
            };
            add_cache_fields(engine, &mut header, status, renewal);
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(|e| e.into_down())?;
            return Ok(Served::Done(status));
        }
        if !sliced {
            return Ok(Served::Pass);
        }
        // Just learnt: the origin was asked (and may be bringing slice 0).
        match req.respond(session, &info, renewal, !known).await {
            Ok(status) => return Ok(Served::Done(status)),
            Err(Failure::Changed) if session.response_written().is_none() => {
                req.forget().await;
                continue;
            }
            Err(Failure::Changed) => {
                req.forget().await;
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    "the object changed at the origin while it was sent",
                );
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    Error::e_explain(
        ErrorType::HTTPStatus(502),
        "the object kept changing at the origin",
    )
}

/// Request conditions a probe GET cannot answer.
const CONDITIONS: &[http::HeaderName] = &[
    http::header::IF_RANGE,
    http::header::IF_MATCH,
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_UNMODIFIED_SINCE,
];

fn unconditional_get(req: &RequestHeader) -> bool {
    req.method == http::Method::GET && !CONDITIONS.iter().any(|h| req.headers.contains_key(h))
}

/// A GET without `Range` or conditions: the request a probe GET that
/// brings the object whole answers.
fn plain_get(req: &RequestHeader) -> bool {
    unconditional_get(req) && !req.headers.contains_key(http::header::RANGE)
}

/// A GET whose only condition is a `Range` of one span starting inside the
/// first `slice_size` bytes: the probe GET of the first slice serves it.
fn first_slice_range(req: &RequestHeader, slice_size: u64) -> bool {
    use crate::range::spec::{Parsed, Spec, parse};
    let Some(range) = req.headers.get(http::header::RANGE) else {
        return false;
    };
    if !unconditional_get(req) {
        return false;
    }
    match parse(range.as_bytes()) {
        Parsed::Bytes(specs) => match specs.as_slice() {
            [Spec::Closed { first, .. } | Spec::Open { first }] => *first < slice_size,
            _ => false,
        },
        Parsed::Ignore => false,
    }
}

/// The cache status and a renewed token, as on every answer of the cache.
fn add_cache_fields(
    engine: &'static Engine,
    header: &mut ResponseHeader,
    status: CacheStatus,
    renewal: Option<&Renewed>,
) {
    let name = engine.config.status_header.as_deref();
    // Cannot fail: a configured name and static or token-safe values.
    let _ = crate::answer::add_cache_fields(header, name, status, renewal);
}

/// The request's `CDN-Loop` entries as one field value.
fn hops_of(req: &pingora_http::RequestHeader) -> Option<http::HeaderValue> {
    let values: Vec<&str> = req
        .headers
        .get_all(crate::cluster::cdn_loop::HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return None;
    }
    http::HeaderValue::from_str(&values.join(", ")).ok()
}

impl Request {
    fn fetch_ctx(&self) -> fetch::Ctx<'_> {
        fetch::Ctx {
            engine: self.engine,
            connector: &self.slicer.connector,
            origin: &self.origin,
            metrics: &self.metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_get_without_range_or_conditions_is_plain() {
        let get = |extra: Option<(&str, &str)>| {
            let mut req = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
            if let Some((n, v)) = extra {
                req.insert_header(n.to_string(), v).unwrap();
            }
            req
        };
        assert!(plain_get(&get(None)));
        assert!(plain_get(&get(Some(("accept", "*/*")))));
        for name in [
            "range",
            "if-range",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
        ] {
            assert!(!plain_get(&get(Some((name, "x")))), "{name}");
        }
        let head = RequestHeader::build("HEAD", b"/v/a.mp4", None).unwrap();
        assert!(!plain_get(&head));
    }

    #[test]
    fn a_range_of_one_span_from_inside_the_first_slice_is_probed() {
        const SLICE: u64 = 1000;
        // (Range, another header, probed)
        type Case = (
            Option<&'static str>,
            Option<(&'static str, &'static str)>,
            bool,
        );
        let cases: &[Case] = &[
            (Some("bytes=0-99"), None, true),
            (Some("bytes=999-5000"), None, true),
            (Some("bytes=500-"), None, true),
            (Some("bytes=1000-1999"), None, false),
            (Some("bytes=-100"), None, false),
            (Some("bytes=0-9,20-29"), None, false),
            (Some("items=0-9"), None, false),
            (Some("bytes=9-0"), None, false),
            (Some("bytes=0-99"), Some(("if-range", "\"e\"")), false),
            (Some("bytes=0-99"), Some(("if-none-match", "\"e\"")), false),
            (None, None, false),
        ];
        for &(range, extra, want) in cases {
            let mut req = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
            if let Some(r) = range {
                req.insert_header("range", r).unwrap();
            }
            if let Some((n, v)) = extra {
                req.insert_header(n.to_string(), v).unwrap();
            }
            assert_eq!(first_slice_range(&req, SLICE), want, "{range:?} {extra:?}");
        }
        let mut head = RequestHeader::build("HEAD", b"/v/a.mp4", None).unwrap();
        head.insert_header("range", "bytes=0-99").unwrap();
        assert!(!first_slice_range(&head, SLICE));
    }
}
