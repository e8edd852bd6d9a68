//! Slice caching of large objects.
//!
//! An object larger than `cache.slice_threshold` is never downloaded whole:
//! the node learns its length and version (ETag) with an origin HEAD or
//! probe GET (below), keeps that as a body-less record in the store, and
//! answers every GET and HEAD for it itself, reading fixed-size slices from
//! the disk store and fetching the missing ones with signed Range GETs
//! pinned to the recorded ETag by `If-Match`. Slices live in the same
//! store as whole objects (same bounds, eviction, purge) under keys derived
//! from the object's (`keys`).
//!
//! Every cold GET or HEAD (no whole object and no fresh record in the store)
//! starts by asking the origin, once per object however many requests
//! arrive together. A plain GET (no `Range`, no conditions) sends a probe
//! GET of the first `PROBE_LEN` bytes rather than the HEAD: its 206 gives
//! the length and ETag (the record), and an object no longer than that
//! comes whole in it, so it is stored and answered with that one origin
//! request. Other requests send the HEAD. Objects at or below the
//! threshold not brought whole go the ordinary way, and their record
//! spares later requests the HEAD or probe.
//!
//! Concurrent requests for one slice share one fetch: the first starts it,
//! the others wait until its fill is visible and then read it as it is
//! written. A request seeking into the middle of a slice nobody fetches
//! yet splits the fetch at its offset and gets its bytes straight from the
//! origin (`fetch`), so its first byte costs the same wherever it lands.
//! After each slice served, the next `read_ahead` slices are fetched in the
//! background.
//!
//! One version per response: slice keys carry a tag of the ETag, and a slice
//! fetch that finds another version (412, another ETag or length) drops the
//! record and every slice of the object. Before the response header is
//! sent the request starts over with the new version; after it, the
//! connection is closed short of the promised length, never stitching two
//! versions.

pub mod fetch;
pub mod info;
pub mod keys;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Range, RangeInclusive};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::prelude::*;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{HitHandler, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::RangeType;
use tokio::sync::{mpsc, watch};

use crate::auth::Renewed;
use crate::cache::engine::{Engine, hashed_key};
use crate::cache::policy::Decision;
use crate::cache::settings::SliceConfig;
use crate::cache::status;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::origin::response::passes_header;
use fetch::{Chunks, FetchError, SliceJob, Split};
use info::ObjectInfo;

/// Headers of a probe's answer that are not the whole object's (its span,
/// and the connection's own).
const NOT_OF_THE_WHOLE: &[&str] = &[
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// How many read-ahead slices are remembered to be counted when used.
const READ_AHEAD_MEMORY: usize = 4096;
/// How many object records are kept decoded in memory.
const RECORD_MEMORY: usize = 4096;

#[derive(Debug, Clone)]
enum FetchState {
    Pending,
    /// The fill is in the store: read it there.
    Started,
    Failed(FetchError),
}

/// Bytes a probe GET asks for (`Range: bytes=0-65535`): an object up to
/// this size comes whole in its answer.
pub const PROBE_LEN: u64 = 64 * 1024;

/// What an origin HEAD or probe GET taught about an object.
#[derive(Clone)]
enum Learned {
    Object(Arc<ObjectInfo>),
    /// A probe GET brought the whole object (stored when the policy allows).
    Whole(Arc<Whole>),
    /// Not a cacheable object with a length and an ETag, or the HEAD failed:
    /// the ordinary path answers (errors included).
    Pass,
    /// The origin did not answer in time: asking again would only double
    /// the client's wait.
    TimedOut(String),
}

/// An object a probe GET brought whole.
struct Whole {
    /// Its 200 header as clients get it (`Content-Length` included).
    header: ResponseHeader,
    body: Bytes,
}

/// Process-wide slice state, living in the `Engine`.
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

#[derive(Default)]
struct ReadAhead {
    keys: HashSet<String>,
    order: VecDeque<String>,
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
}

/// What `serve` did.
pub enum Served {
    /// Not a sliced object: the ordinary cache path answers.
    Pass,
    /// Answered; the cache label for the log and metrics.
    Done(&'static str),
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

/// The object an admitted request asks for.
pub struct Asked<'a> {
    /// Its cache key (`cache::engine::cache_key` of `path` and `query`).
    pub key: &'a CacheKey,
    /// The canonical path and query.
    pub path: &'a str,
    pub query: &'a str,
    /// A renewed token for the response.
    pub renewal: Option<&'a Renewed>,
}

fn key_text(key: &CacheKey) -> &str {
    key.primary_key_str().unwrap_or_default()
}

/// Answers a GET or HEAD for a sliced object, or says `Pass`.
///
/// A whole object in the store goes the ordinary way at once. Otherwise the
/// object's record says what it is; without a fresh one, the origin is
/// asked (once per object however many requests arrive together): a plain
/// GET sends a probe GET of the first `PROBE_LEN` bytes, which brings a
/// small object whole (stored and answered at once), others a HEAD. Large
/// objects are then served from slices, small ones by the ordinary path.
/// `asked.renewal` is added to every response written here.
pub async fn serve(
    engine: &'static Engine,
    origin: &Arc<Origin>,
    metrics: &Arc<Metrics>,
    session: &mut Session,
    asked: Asked<'_>,
) -> Result<Served> {
    let Asked {
        key,
        path,
        query,
        renewal,
    } = asked;
    let Some(slicer) = engine.slicer.as_ref() else {
        return Ok(Served::Pass);
    };
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
    };
    let plain = plain_get(session.req_header());
    for _attempt in 0..2 {
        let (info, known) = match req.record().await {
            Some(info) => (info, true),
            None => match req.learn_shared(plain).await {
                Learned::Object(info) => (info, false),
                Learned::Whole(whole) => {
                    // A GET with a range or conditions: the ordinary path
                    // (from the store when the object was kept).
                    if method != http::Method::HEAD && !plain {
                        return Ok(Served::Pass);
                    }
                    // Learnt with `Accept-Ranges` (`range::advertise`); no
                    // range here.
                    let mut header = whole.header.clone();
                    add_cache_fields(engine, &mut header, status::MISS, renewal);
                    let head_only = method == http::Method::HEAD;
                    let body = whole.body.clone();
                    crate::proxy::answer::send_whole(session, header, body, head_only).await?;
                    return Ok(Served::Done(status::MISS));
                }
                Learned::Pass => return Ok(Served::Pass),
                Learned::TimedOut(why) => {
                    return Err(Error::explain(ErrorType::ReadTimedout, why).into_up());
                }
            },
        };
        let sliced = info.len > slicer.config.threshold;
        if method == http::Method::HEAD {
            let mut header = info.client_header();
            crate::range::apply(session.req_header(), &mut header);
            let label = if known { status::HIT } else { status::MISS };
            add_cache_fields(engine, &mut header, label, renewal);
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(|e| e.into_down())?;
            return Ok(Served::Done(label));
        }
        if !sliced {
            return Ok(Served::Pass);
        }
        match req.respond(session, &info, renewal).await {
            Ok(label) => return Ok(Served::Done(label)),
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

/// A GET without `Range` or conditions: the request a probe GET can answer.
fn plain_get(req: &RequestHeader) -> bool {
    const NOT_PLAIN: &[http::HeaderName] = &[
        http::header::RANGE,
        http::header::IF_RANGE,
        http::header::IF_MATCH,
        http::header::IF_NONE_MATCH,
        http::header::IF_MODIFIED_SINCE,
        http::header::IF_UNMODIFIED_SINCE,
    ];
    req.method == http::Method::GET && !NOT_PLAIN.iter().any(|h| req.headers.contains_key(h))
}

/// The cache status and a renewed token, as on every answer of the cache.
fn add_cache_fields(
    engine: &'static Engine,
    header: &mut ResponseHeader,
    label: &'static str,
    renewal: Option<&Renewed>,
) {
    let name = engine.config.status_header.as_deref();
    // Cannot fail: a configured name and static or token-safe values.
    let _ = crate::proxy::answer::add_cache_fields(header, name, label, renewal);
}

enum Failure {
    Changed,
    Other(Box<Error>),
}

impl From<Box<Error>> for Failure {
    fn from(e: Box<Error>) -> Self {
        Failure::Other(e)
    }
}

/// A write to the client failed: the client went away (logged as such).
fn client_gone(e: Box<Error>) -> Failure {
    Failure::Other(e.into_down())
}

/// A slice that could not be had, as the request's failure.
fn fetch_failure(n: u64, e: FetchError) -> Failure {
    match e {
        FetchError::VersionChanged => Failure::Changed,
        FetchError::TimedOut(why) => Failure::Other(Error::explain(
            ErrorType::HTTPStatus(504),
            format!("slice {n}: {why}"),
        )),
        FetchError::Failed(why) => Failure::Other(Error::explain(
            ErrorType::HTTPStatus(502),
            format!("slice {n}: {why}"),
        )),
    }
}

/// The next chunk of a split fetch's second part.
async fn next_direct(chunks: &mut Chunks, n: u64) -> Result<Bytes, Failure> {
    match chunks.recv().await {
        Some(Ok(chunk)) => Ok(chunk),
        Some(Err(e)) => Err(fetch_failure(n, e)),
        None => Err(fetch_failure(
            n,
            FetchError::Failed("the fetch ended early".into()),
        )),
    }
}

/// Where the bytes of one slice come from.
enum Reader {
    /// The store: a complete slice, or a fill being written.
    Store(HitHandler),
    /// The second part of a split fetch this request started, from the
    /// requested offset on, as the origin sends it (its first chunk taken).
    Direct(Option<Bytes>, Chunks),
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

    /// The stored record of the object, fresh or not, with its freshness.
    async fn stored_record(&self) -> Option<(ObjectInfo, bool)> {
        let span = Span::inactive();
        let (meta, _) = self
            .engine
            .store
            .lookup(&keys::info(&self.primary), &span.handle())
            .await
            .ok()
            .flatten()?;
        let fresh = meta.is_fresh(SystemTime::now());
        Some((ObjectInfo::from_meta(&meta)?, fresh))
    }

    /// The fresh record of the object, if stored: decoded from memory while
    /// the store still holds it, from the store otherwise.
    async fn record(&self) -> Option<Arc<ObjectInfo>> {
        let remembered = lock(&self.slicer.records).get(&self.primary).cloned();
        if let Some(info) = remembered {
            if info.fresh_until > SystemTime::now()
                && self.engine.store.contains(&keys::info(&self.primary))
            {
                return Some(info);
            }
            self.slicer.forget_record(&self.primary);
        }
        let (info, fresh) = self.stored_record().await?;
        if !fresh {
            return None;
        }
        let info = Arc::new(info);
        self.slicer.remember_record(&self.primary, info.clone());
        Some(info)
    }

    /// Learns the object with an origin HEAD, or with a probe GET when
    /// `probe`, shared by every request for it that arrives meanwhile
    /// (whichever way the first one asked). The origin request runs on its
    /// own task: a client going away does not cut it short for the others.
    async fn learn_shared(&self, probe: bool) -> Learned {
        let mut rx = {
            let mut learning = lock(&self.slicer.learning);
            match learning.get(&self.primary) {
                Some(rx) => rx.clone(),
                // A probe stored the whole object since this request
                // looked: it is a hit on the ordinary path.
                None if self.engine.store.contains(&self.whole_key()) => {
                    return Learned::Pass;
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    learning.insert(self.primary.clone(), rx.clone());
                    let req = self.clone();
                    tokio::spawn(async move {
                        let learned = if probe {
                            req.probe().await
                        } else {
                            req.learn().await
                        };
                        lock(&req.slicer.learning).remove(&req.primary);
                        tx.send_replace(Some(learned));
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(learned) = rx.borrow_and_update().clone() {
                return learned;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone().unwrap_or(Learned::Pass);
            }
        }
    }

    /// The whole object's key in the store.
    fn whole_key(&self) -> CacheKey {
        hashed_key(self.primary.clone())
    }

    /// GETs the object's first `PROBE_LEN` bytes from the origin. A 206
    /// from byte 0 with an ETag gives the object's length and version: the
    /// record is stored as after a HEAD, and when the answer holds the whole
    /// object, that is stored too (before the record, so a request finding
    /// the record finds the object) and answered. Any other answer: the
    /// ordinary path asks again and answers.
    async fn probe(&self) -> Learned {
        let probe = match fetch::probe(
            &self.slicer.connector,
            &self.origin,
            &self.metrics,
            &self.path,
            &self.query,
            PROBE_LEN,
        )
        .await
        {
            Ok(probe) => probe,
            Err(FetchError::TimedOut(why)) => return Learned::TimedOut(why),
            Err(e) => {
                tracing::debug!(error = %e, "origin probe GET failed");
                return Learned::Pass;
            }
        };
        let Some(total) = probe.total else {
            return Learned::Pass;
        };
        if !probe.resp.headers.contains_key(http::header::ETAG) {
            return Learned::Pass;
        }
        // The answer as the whole object's 200, for the policy (which sees
        // every origin header), and as kept and sent (passing ones only).
        let mut origin_200 = probe.resp.clone();
        origin_200.set_status(200).ok();
        origin_200.remove_header(&http::header::CONTENT_RANGE);
        let _ = origin_200.insert_header(http::header::CONTENT_LENGTH, total);
        let mut header = match ResponseHeader::build(200, None) {
            Ok(h) => h,
            Err(_) => return Learned::Pass,
        };
        for (name, value) in origin_200.headers.iter() {
            let n = name.as_str();
            if passes_header(n) && !NOT_OF_THE_WHOLE.contains(&n) {
                let _ = header.append_header(name.clone(), value.clone());
            }
        }
        // Stored with `Accept-Ranges`, which every answer of a whole object
        // carries: hits find it there.
        crate::range::advertise(&mut header);
        let now = SystemTime::now();
        let decision = self.engine.config.policy.decide(&origin_200, now);
        let Decision::Store {
            fresh_until,
            stale_while_revalidate_sec: swr,
            stale_if_error_sec: sie,
        } = decision
        else {
            // Not to be kept: a small object is still answered from the
            // probe's bytes.
            return match probe.body {
                Some(body) => Learned::Whole(Arc::new(Whole { header, body })),
                None => Learned::Pass,
            };
        };
        let Some(info) = ObjectInfo::from_head(&origin_200, fresh_until) else {
            return Learned::Pass;
        };
        if let Some(body) = &probe.body {
            let meta = CacheMeta::new(fresh_until, now, swr, sie, header.clone());
            fetch::store_entry(self.engine, &self.whole_key(), &meta, Some(body.clone())).await;
        }
        let info = self.keep_record(info, now, swr, sie).await;
        match probe.body {
            Some(body) => Learned::Whole(Arc::new(Whole { header, body })),
            None => Learned::Object(info),
        }
    }

    /// Stores the object's record, dropping the slices of a version it
    /// replaces, and keeps it decoded.
    async fn keep_record(
        &self,
        info: ObjectInfo,
        now: SystemTime,
        swr: u32,
        sie: u32,
    ) -> Arc<ObjectInfo> {
        // A record replaced by another version: its slices are garbage.
        if let Some((old, _)) = self.stored_record().await
            && old.etag != info.etag
        {
            self.metrics.slices.version_changes.inc();
            self.drop_slices(&old.etag).await;
        }
        let meta: CacheMeta = info.to_meta(now, swr, sie);
        fetch::store_entry(self.engine, &keys::info(&self.primary), &meta, None).await;
        let info = Arc::new(info);
        self.slicer.remember_record(&self.primary, info.clone());
        info
    }

    /// HEADs the origin and stores the record.
    async fn learn(&self) -> Learned {
        let resp = match fetch::head(
            &self.slicer.connector,
            &self.origin,
            &self.metrics,
            &self.path,
            &self.query,
        )
        .await
        {
            Ok(resp) => resp,
            Err(FetchError::TimedOut(why)) => return Learned::TimedOut(why),
            Err(e) => {
                tracing::debug!(error = %e, "origin HEAD failed");
                return Learned::Pass;
            }
        };
        let now = SystemTime::now();
        let Decision::Store {
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
        } = self.engine.config.policy.decide(&resp, now)
        else {
            return Learned::Pass;
        };
        let Some(info) = ObjectInfo::from_head(&resp, fresh_until) else {
            return Learned::Pass;
        };
        Learned::Object(
            self.keep_record(info, now, stale_while_revalidate_sec, stale_if_error_sec)
                .await,
        )
    }

    async fn drop_slices(&self, etag: &str) {
        let prefix = keys::version_prefix(&self.primary, &keys::version_tag(etag));
        self.slicer.forget_read_ahead(&prefix, &self.metrics);
        self.engine.purge_prefix(&prefix).await;
    }

    /// The object changed: drop its record and all its slices.
    async fn forget(&self) {
        self.metrics.slices.version_changes.inc();
        self.slicer.forget_record(&self.primary);
        let family = keys::family(&self.primary);
        self.slicer.forget_read_ahead(&family, &self.metrics);
        self.engine.purge_prefix(&family).await;
    }

    fn job(&self, info: &ObjectInfo, key: CacheKey, n: u64) -> SliceJob {
        let size = self.slicer.config.size;
        let start = n * size;
        SliceJob {
            path: self.path.clone(),
            query: self.query.clone(),
            key,
            start,
            end: (start + size).min(info.len),
            object_len: info.len,
            etag: info.etag.clone(),
            header: info.header.clone(),
            fresh_until: info.fresh_until,
        }
    }

    /// Writes the answer: header from the record, body from slices.
    async fn respond(
        &self,
        session: &mut Session,
        info: &ObjectInfo,
        renewal: Option<&Renewed>,
    ) -> Result<&'static str, Failure> {
        let mut header = info.client_header();
        let range = crate::range::apply(session.req_header(), &mut header);
        let (parts, framing): (Vec<Range<u64>>, Option<Multipart>) = match &range {
            RangeType::None => (std::iter::once(0..info.len).collect(), None),
            RangeType::Single(r) => (
                std::iter::once(r.start as u64..r.end as u64).collect(),
                None,
            ),
            RangeType::Multi(m) => (
                m.ranges
                    .iter()
                    .map(|r| r.start as u64..r.end as u64)
                    .collect(),
                Some(Multipart {
                    boundary: m.boundary.clone(),
                    content_type: m.content_type.clone(),
                    len: info.len,
                }),
            ),
            RangeType::Invalid => (Vec::new(), None),
        };
        let size = self.slicer.config.size;
        let prefix = keys::slice_prefix(&self.primary, &keys::version_tag(&info.etag));
        let all_here = parts.iter().all(|r| {
            (r.start / size..=(r.end - 1) / size)
                .all(|n| self.engine.store.contains(&keys::slice_at(&prefix, n)))
        });
        let label = if all_here { status::HIT } else { status::MISS };
        add_cache_fields(self.engine, &mut header, label, renewal);
        // Before anything is sent: the first slice decides whether the
        // version still holds, so a change can start over cleanly.
        let Some(first_part) = parts.first() else {
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(client_gone)?;
            return Ok(label);
        };
        let n0 = first_part.start / size;
        let mut first = Some(
            self.slice(
                info,
                &prefix,
                n0,
                Some(first_part.start).filter(|_| !all_here),
            )
            .await?,
        );
        session
            .write_response_header(Box::new(header), false)
            .await
            .map_err(client_gone)?;
        let last_slice = info.slices(size) - 1;
        let read_ahead = u64::from(self.slicer.config.read_ahead);
        for r in &parts {
            if let Some(m) = &framing {
                session
                    .write_response_body(Some(m.part_head(r)), false)
                    .await
                    .map_err(client_gone)?;
            }
            for n in r.start / size..=(r.end - 1) / size {
                let reader = match first.take() {
                    Some(reader) => reader,
                    None => self.slice(info, &prefix, n, None).await?,
                };
                if read_ahead > 0 && n < last_slice {
                    self.read_ahead(info, &prefix, n + 1..=(n + read_ahead).min(last_slice));
                }
                let base = n * size;
                let from = r.start.max(base) - base;
                let to = r.end.min(base + size) - base;
                match reader {
                    Reader::Store(mut hit) => {
                        hit.seek(from as usize, Some(to as usize))?;
                        while let Some(chunk) = hit.read_body().await? {
                            session
                                .write_response_body(Some(chunk), false)
                                .await
                                .map_err(client_gone)?;
                        }
                    }
                    // Starts at `from`: split there for this very part.
                    Reader::Direct(mut first, mut chunks) => {
                        let mut left = to - from;
                        while left > 0 {
                            let mut chunk = match first.take() {
                                Some(chunk) => chunk,
                                None => next_direct(&mut chunks, n).await?,
                            };
                            if chunk.len() as u64 > left {
                                chunk.truncate(left as usize);
                            }
                            left -= chunk.len() as u64;
                            session
                                .write_response_body(Some(chunk), false)
                                .await
                                .map_err(client_gone)?;
                        }
                    }
                }
            }
        }
        let tail = framing.as_ref().map(Multipart::tail).unwrap_or_default();
        session
            .write_response_body(Some(tail), true)
            .await
            .map_err(client_gone)?;
        Ok(label)
    }

    /// A reader of slice `n`: from disk, or following a fetch (ours or one
    /// already under way). With `seek` past the slice's start and no fetch
    /// under way, the fetch is split there and the reader starts at `seek`.
    async fn slice(
        &self,
        info: &ObjectInfo,
        prefix: &str,
        n: u64,
        seek: Option<u64>,
    ) -> Result<Reader, Failure> {
        let key = keys::slice_at(prefix, n);
        let mut split = seek.filter(|&at| at > n * self.slicer.config.size);
        let mut waited = false;
        for _ in 0..3 {
            let span = Span::inactive();
            if let Some((meta, hit)) = self.engine.store.lookup(&key, &span.handle()).await? {
                self.slicer.used(&key, &self.metrics);
                if !waited {
                    self.metrics.slices.served_from_disk.inc();
                }
                if hit.should_count_access() {
                    let entry = CacheEntryKey::from_entry_id(key.to_compact(), hit.entry_id());
                    self.engine.eviction.access(
                        &entry,
                        hit.get_eviction_weight(),
                        meta.fresh_until(),
                    );
                }
                return Ok(Reader::Store(hit));
            }
            waited = true;
            let (mut rx, direct) =
                self.slicer
                    .start(self, info, key.clone(), n, "request", split.take());
            // Our own split fetch: its first bytes tell the version held.
            if let Some(mut chunks) = direct {
                let first = next_direct(&mut chunks, n).await?;
                return Ok(Reader::Direct(Some(first), chunks));
            }
            let state = loop {
                let state = rx.borrow_and_update().clone();
                if !matches!(state, FetchState::Pending) {
                    break state;
                }
                if rx.changed().await.is_err() {
                    break FetchState::Failed(FetchError::Failed("slice fetch vanished".into()));
                }
            };
            match state {
                FetchState::Started | FetchState::Pending => {}
                FetchState::Failed(e) => return Err(fetch_failure(n, e)),
            }
        }
        Err(Failure::Other(Error::explain(
            ErrorType::HTTPStatus(502),
            format!("slice {n} could not be read"),
        )))
    }

    /// Starts background fetches of the slices in `next` not yet stored.
    fn read_ahead(&self, info: &ObjectInfo, prefix: &str, next: RangeInclusive<u64>) {
        for n in next {
            let key = keys::slice_at(prefix, n);
            if self.engine.store.contains(&key) {
                continue;
            }
            let text = key_text(&key);
            if lock(&self.slicer.inflight).contains_key(text) {
                continue;
            }
            self.slicer.remember_read_ahead(text, &self.metrics);
            let _ = self.slicer.start(self, info, key, n, "read_ahead", None);
        }
    }
}

impl Slicer {
    /// The fetch of slice `n`: joins one under way, or spawns it (split at
    /// `split` when given: then the second part's bytes come back too).
    /// The fetch runs on its own task, so a client going away never cuts a
    /// fill short.
    fn start(
        &'static self,
        req: &Request,
        info: &ObjectInfo,
        key: CacheKey,
        n: u64,
        trigger: &'static str,
        split: Option<u64>,
    ) -> (watch::Receiver<FetchState>, Option<Chunks>) {
        let text = key_text(&key).to_string();
        let (tx, rx) = {
            let mut inflight = lock(&self.inflight);
            if let Some(rx) = inflight.get(&text) {
                return (rx.clone(), None);
            }
            let (tx, rx) = watch::channel(FetchState::Pending);
            // Under the map lock: a fetch that finished between the
            // caller's lookup and now left its slice in the store.
            if req.engine.store.contains(&key) {
                let _ = tx.send(FetchState::Started);
                return (rx, None);
            }
            inflight.insert(text.clone(), rx.clone());
            (tx, rx)
        };
        let job = req.job(info, key, n);
        let (split, chunks) = match split {
            Some(at) => {
                let (client, chunks) = mpsc::unbounded_channel();
                (Some(Split { at, client }), Some(chunks))
            }
            None => (None, None),
        };
        let req = req.clone();
        tokio::spawn(async move {
            let metrics = &req.metrics;
            metrics.slices.fetches_in_progress.inc();
            let announce = || {
                let _ = tx.send(FetchState::Started);
                lock(&self.inflight).remove(&text);
            };
            let res = fetch::fetch_slice(req.fetch_ctx(), &job, split, announce).await;
            match res {
                Ok(()) => {
                    metrics.slices.fetched.with_label_values(&[trigger]).inc();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "slice fetch failed");
                    lock(&self.inflight).remove(&text);
                    tx.send_replace(FetchState::Failed(e));
                }
            }
            metrics.slices.fetches_in_progress.dec();
        });
        (rx, chunks)
    }

    fn remember_read_ahead(&self, key: &str, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        if ra.keys.insert(key.to_string()) {
            ra.order.push_back(key.to_string());
        }
        while ra.order.len() > READ_AHEAD_MEMORY {
            if let Some(old) = ra.order.pop_front()
                && ra.keys.remove(&old)
            {
                metrics
                    .slices
                    .read_ahead
                    .with_label_values(&["wasted"])
                    .inc();
            }
        }
    }

    /// A request read slice `key`: if read-ahead brought it, it was used.
    fn used(&self, key: &CacheKey, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        if ra.keys.is_empty() {
            return;
        }
        let key = key_text(key);
        if ra.keys.remove(key) {
            ra.order.retain(|k| k != key);
            metrics.slices.read_ahead.with_label_values(&["used"]).inc();
        }
    }

    /// Slices under `prefix` are being dropped: read-ahead ones never used
    /// were wasted.
    fn forget_read_ahead(&self, prefix: &str, metrics: &Metrics) {
        let mut ra = lock(&self.read_ahead);
        let before = ra.keys.len();
        ra.keys.retain(|k| !k.starts_with(prefix));
        let gone = before - ra.keys.len();
        if gone > 0 {
            ra.order.retain(|k| !k.starts_with(prefix));
            metrics
                .slices
                .read_ahead
                .with_label_values(&["wasted"])
                .inc_by(gone as u64);
        }
    }
}

/// `multipart/byteranges` framing, byte for byte what
/// `MultiRangeInfo::calculate_multipart_length` counts.
struct Multipart {
    boundary: String,
    content_type: Option<String>,
    len: u64,
}

impl Multipart {
    fn part_head(&self, r: &Range<u64>) -> Bytes {
        let ct = self
            .content_type
            .as_ref()
            .map(|ct| format!("Content-Type: {ct}\r\n"))
            .unwrap_or_default();
        Bytes::from(format!(
            "\r\n--{}\r\n{ct}Content-Range: bytes {}-{}/{}\r\n\r\n",
            self.boundary,
            r.start,
            r.end - 1,
            self.len
        ))
    }

    fn tail(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
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
}
