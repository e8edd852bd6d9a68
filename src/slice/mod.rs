//! Slice caching of large objects.
//!
//! An object larger than `cache.slice_threshold` is never downloaded whole:
//! the node learns its length and version (ETag) with an origin HEAD, keeps
//! that as a body-less record in the store, and answers every GET and HEAD
//! for it itself, reading fixed-size slices from the disk store and fetching
//! the missing ones with signed Range GETs pinned to the recorded ETag by
//! `If-Match`. Slices live in the same store as whole objects (same bounds,
//! eviction, purge) under keys derived from the object's (`keys`).
//!
//! Concurrent requests for one slice share one fetch: the first starts it,
//! the others wait until its fill is visible and then read it as it is
//! written. After each slice served, the next `read_ahead` slices are
//! fetched in the background.
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
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::prelude::*;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{HitHandler, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use pingora_proxy::RangeType;
use tokio::sync::watch;

use crate::cache::engine::{Engine, cache_key};
use crate::cache::policy::Decision;
use crate::cache::settings::SliceConfig;
use crate::cache::status;
use crate::metrics::Metrics;
use crate::origin::Origin;
use fetch::{FetchError, SliceJob};
use info::ObjectInfo;

/// How many read-ahead slices are remembered to be counted when used.
const READ_AHEAD_MEMORY: usize = 4096;

#[derive(Debug, Clone)]
enum FetchState {
    Pending,
    /// The fill is in the store: read it there.
    Started,
    Failed(FetchError),
}

/// Process-wide slice state, living in the `Engine`.
pub struct Slicer {
    pub config: SliceConfig,
    connector: Connector,
    inflight: Mutex<HashMap<String, watch::Receiver<FetchState>>>,
    read_ahead: Mutex<ReadAhead>,
}

#[derive(Default)]
struct ReadAhead {
    keys: HashSet<String>,
    order: VecDeque<String>,
}

/// One client request for a sliced object.
struct Request<'a> {
    engine: &'static Engine,
    slicer: &'static Slicer,
    origin: &'a Arc<Origin>,
    metrics: &'a Arc<Metrics>,
    path: &'a str,
    query: &'a str,
    primary: String,
}

/// What `serve` did.
pub enum Served {
    /// Not a sliced object: the ordinary cache path answers.
    Pass,
    /// Answered; the cache label for the log and metrics.
    Done(&'static str),
}

impl Slicer {
    pub fn new(config: SliceConfig) -> Slicer {
        Slicer {
            config,
            connector: Connector::new(None),
            inflight: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(ReadAhead::default()),
        }
    }

    fn lock_inflight(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<FetchState>>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_read_ahead(&self) -> std::sync::MutexGuard<'_, ReadAhead> {
        self.read_ahead.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key_text(key: &CacheKey) -> String {
    key.primary_key_str().unwrap_or_default().to_string()
}

/// Answers a GET or HEAD for a sliced object, or says `Pass`.
pub async fn serve(
    engine: &'static Engine,
    origin: &Arc<Origin>,
    metrics: &Arc<Metrics>,
    session: &mut Session,
    path: &str,
    query: &str,
) -> Result<Served> {
    let Some(slicer) = engine.slicer.as_ref() else {
        return Ok(Served::Pass);
    };
    let method = session.req_header().method.clone();
    if method != http::Method::GET && method != http::Method::HEAD {
        return Ok(Served::Pass);
    }
    let req = Request {
        engine,
        slicer,
        origin,
        metrics,
        path,
        query,
        primary: crate::cache::key::cache_key(path, query),
    };
    for _attempt in 0..2 {
        let (info, known) = match req.record().await {
            Some(info) => (info, true),
            None => {
                // A whole object in the store, or a plain GET of an unknown
                // object, takes the ordinary path: no HEAD for small files.
                if engine.store.contains(&cache_key(path, query))
                    || (method == http::Method::GET
                        && session
                            .req_header()
                            .headers
                            .get(http::header::RANGE)
                            .is_none())
                {
                    return Ok(Served::Pass);
                }
                match req.learn().await {
                    Some(info) => (info, false),
                    None => return Ok(Served::Pass),
                }
            }
        };
        let sliced = info.len > slicer.config.threshold;
        if method == http::Method::HEAD {
            let mut header = info.client_header();
            crate::range::apply(session.req_header(), &mut header);
            let label = if known { status::HIT } else { status::MISS };
            set_status_header(engine, &mut header, label);
            session
                .write_response_header(Box::new(header), true)
                .await?;
            return Ok(Served::Done(label));
        }
        if !sliced {
            return Ok(Served::Pass);
        }
        match req.respond(session, &info).await {
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

fn set_status_header(engine: &Engine, header: &mut ResponseHeader, label: &'static str) {
    if let Some(name) = engine.config.status_header.as_ref() {
        let _ = header.insert_header(name.clone(), status::header_value(label));
    }
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

impl Request<'_> {
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

    /// The fresh record of the object, if stored.
    async fn record(&self) -> Option<ObjectInfo> {
        let (info, fresh) = self.stored_record().await?;
        fresh.then_some(info)
    }

    /// HEADs the origin and stores the record; `None` when the answer is not
    /// a cacheable 200 with a length and an ETag (the ordinary path then
    /// deals with it, errors included).
    async fn learn(&self) -> Option<ObjectInfo> {
        let resp = match fetch::head(
            &self.slicer.connector,
            self.origin,
            self.metrics,
            self.path,
            self.query,
        )
        .await
        {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(error = %e, "origin HEAD failed");
                return None;
            }
        };
        let now = SystemTime::now();
        let Decision::Store {
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
        } = self.engine.config.policy.decide(&resp, now)
        else {
            return None;
        };
        let info = ObjectInfo::from_head(&resp, fresh_until)?;
        // A record replaced by another version: its slices are garbage.
        let stale = self.stale_record().await;
        if let Some(old) = stale
            && old.etag != info.etag
        {
            self.metrics.slices.version_changes.inc();
            self.drop_slices(&old.etag).await;
        }
        let meta: CacheMeta = info.to_meta(now, stale_while_revalidate_sec, stale_if_error_sec);
        fetch::store_record(self.engine, &keys::info(&self.primary), &meta).await;
        Some(info)
    }

    /// The stored record even when it is no longer fresh.
    async fn stale_record(&self) -> Option<ObjectInfo> {
        self.stored_record().await.map(|(info, _)| info)
    }

    async fn drop_slices(&self, etag: &str) {
        let prefix = keys::version_prefix(&self.primary, &keys::version_tag(etag));
        self.slicer.forget_read_ahead(&prefix, self.metrics);
        self.engine.purge_prefix(&prefix).await;
    }

    /// The object changed: drop its record and all its slices.
    async fn forget(&self) {
        self.metrics.slices.version_changes.inc();
        let family = keys::family(&self.primary);
        self.slicer.forget_read_ahead(&family, self.metrics);
        self.engine.purge_prefix(&family).await;
    }

    fn job(&self, info: &ObjectInfo, n: u64) -> SliceJob {
        let size = self.slicer.config.size;
        let start = n * size;
        SliceJob {
            path: self.path.to_string(),
            query: self.query.to_string(),
            key: keys::slice(&self.primary, &keys::version_tag(&info.etag), n),
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
        let tag = keys::version_tag(&info.etag);
        let all_here = parts.iter().all(|r| {
            (r.start / size..=(r.end - 1) / size).all(|n| {
                self.engine
                    .store
                    .contains(&keys::slice(&self.primary, &tag, n))
            })
        });
        let label = if all_here { status::HIT } else { status::MISS };
        set_status_header(self.engine, &mut header, label);
        // Before anything is sent: the first slice decides whether the
        // version still holds, so a change can start over cleanly.
        let mut first = match parts.first() {
            Some(r) => Some(self.slice(info, r.start / size).await?),
            None => None,
        };
        if parts.is_empty() {
            session
                .write_response_header(Box::new(header), true)
                .await?;
            return Ok(label);
        }
        session
            .write_response_header(Box::new(header), false)
            .await?;
        let last_slice = info.slices(size) - 1;
        for r in &parts {
            if let Some(m) = &framing {
                session
                    .write_response_body(Some(m.part_head(r)), false)
                    .await?;
            }
            for n in r.start / size..=(r.end - 1) / size {
                let mut hit = match first.take() {
                    Some(hit) => hit,
                    None => self.slice(info, n).await?,
                };
                self.read_ahead(
                    info,
                    n + 1..=(n + u64::from(self.slicer.config.read_ahead)).min(last_slice),
                );
                let base = n * size;
                let from = r.start.max(base) - base;
                let to = r.end.min(base + size) - base;
                hit.seek(from as usize, Some(to as usize))?;
                while let Some(chunk) = hit.read_body().await? {
                    session.write_response_body(Some(chunk), false).await?;
                }
            }
        }
        let tail = framing.as_ref().map(Multipart::tail).unwrap_or_default();
        session.write_response_body(Some(tail), true).await?;
        Ok(label)
    }

    /// A reader of slice `n`: from disk, or following a fetch (ours or one
    /// already under way).
    async fn slice(&self, info: &ObjectInfo, n: u64) -> Result<HitHandler, Failure> {
        let job = self.job(info, n);
        let text = key_text(&job.key);
        let mut waited = false;
        for _ in 0..3 {
            let span = Span::inactive();
            if let Some((meta, hit)) = self.engine.store.lookup(&job.key, &span.handle()).await? {
                self.slicer.used(&text, self.metrics);
                if !waited {
                    self.metrics.slices.served_from_disk.inc();
                }
                if hit.should_count_access() {
                    let entry = CacheEntryKey::from_entry_id(job.key.to_compact(), hit.entry_id());
                    self.engine.eviction.access(
                        &entry,
                        hit.get_eviction_weight(),
                        meta.fresh_until(),
                    );
                }
                return Ok(hit);
            }
            waited = true;
            let mut rx = self.slicer.start(self, self.job(info, n), "request");
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
                FetchState::Failed(FetchError::VersionChanged) => return Err(Failure::Changed),
                FetchState::Failed(FetchError::Failed(why)) => {
                    return Err(Failure::Other(Error::explain(
                        ErrorType::HTTPStatus(502),
                        format!("slice {n}: {why}"),
                    )));
                }
            }
        }
        Err(Failure::Other(Error::explain(
            ErrorType::HTTPStatus(502),
            format!("slice {n} could not be read"),
        )))
    }

    /// Starts background fetches of the slices in `next` not yet stored.
    fn read_ahead(&self, info: &ObjectInfo, next: std::ops::RangeInclusive<u64>) {
        for n in next {
            let job = self.job(info, n);
            if self.engine.store.contains(&job.key) {
                continue;
            }
            let text = key_text(&job.key);
            if self.slicer.lock_inflight().contains_key(&text) {
                continue;
            }
            self.slicer.remember_read_ahead(text, self.metrics);
            let _ = self.slicer.start(self, job, "read_ahead");
        }
    }
}

impl Slicer {
    /// The fetch of `job`: joins one under way, or spawns it. The fetch runs
    /// on its own task, so a client going away never cuts a fill short.
    fn start(
        &'static self,
        req: &Request<'_>,
        job: SliceJob,
        trigger: &'static str,
    ) -> watch::Receiver<FetchState> {
        let text = key_text(&job.key);
        let tx = {
            let mut inflight = self.lock_inflight();
            if let Some(rx) = inflight.get(&text) {
                return rx.clone();
            }
            let (tx, rx) = watch::channel(FetchState::Pending);
            // Under the map lock: a fetch that finished between the
            // caller's lookup and now left its slice in the store.
            if req.engine.store.contains(&job.key) {
                let _ = tx.send(FetchState::Started);
                return rx;
            }
            inflight.insert(text.clone(), rx.clone());
            (tx, rx)
        };
        let (tx, rx) = tx;
        let (engine, origin, metrics) = (req.engine, req.origin.clone(), req.metrics.clone());
        tokio::spawn(async move {
            let announce = || {
                let _ = tx.send(FetchState::Started);
                self.lock_inflight().remove(&text);
            };
            let res =
                fetch::fetch_slice(engine, &self.connector, &origin, &metrics, &job, announce)
                    .await;
            match res {
                Ok(()) => {
                    metrics.slices.fetched.with_label_values(&[trigger]).inc();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "slice fetch failed");
                    self.lock_inflight().remove(&text);
                    tx.send_replace(FetchState::Failed(e));
                }
            }
        });
        rx
    }

    fn remember_read_ahead(&self, key: String, metrics: &Metrics) {
        let mut ra = self.lock_read_ahead();
        if ra.keys.insert(key.clone()) {
            ra.order.push_back(key);
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
    fn used(&self, key: &str, metrics: &Metrics) {
        let mut ra = self.lock_read_ahead();
        if ra.keys.remove(key) {
            ra.order.retain(|k| k != key);
            metrics.slices.read_ahead.with_label_values(&["used"]).inc();
        }
    }

    /// Slices under `prefix` are being dropped: read-ahead ones never used
    /// were wasted.
    fn forget_read_ahead(&self, prefix: &str, metrics: &Metrics) {
        let mut ra = self.lock_read_ahead();
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
