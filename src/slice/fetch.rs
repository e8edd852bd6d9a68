//! Talking to the origin for sliced objects (HEAD for the record, signed
//! Range GETs pinned to one ETag with `If-Match` for slices) and writing
//! what comes back into the disk store.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{MissFinishType, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::cache::engine::Engine;
use crate::metrics::{Metrics, status_class};
use crate::origin::Origin;

/// Why a slice could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The origin's object is no longer the version the slice was asked for.
    VersionChanged,
    /// Anything else: origin unreachable or failing, short body, disk.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::VersionChanged => f.write_str("the object changed at the origin"),
            FetchError::Failed(why) => f.write_str(why),
        }
    }
}

fn failed(why: impl Into<String>) -> FetchError {
    FetchError::Failed(why.into())
}

/// One request to the origin: the session with its response header read.
async fn exchange(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    req: RequestHeader,
) -> Result<(HttpSession, ResponseHeader, HttpPeer), FetchError> {
    let peer = origin.peer().ok_or_else(|| failed("no origin address"))?;
    let (mut session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| failed(format!("origin connect: {e}")))?;
    session.set_read_timeout(Some(origin.config.read_timeout));
    session.set_write_timeout(Some(origin.config.read_timeout));
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| failed(format!("origin request: {e}")))?;
    session
        .read_response_header()
        .await
        .map_err(|e| failed(format!("origin response: {e}")))?;
    let resp = session
        .response_header()
        .cloned()
        .ok_or_else(|| failed("origin response without a header"))?;
    metrics
        .origin_requests
        .with_label_values(&[status_class(resp.status.as_u16())])
        .inc();
    Ok((session, resp, peer))
}

/// Asks the origin for the object's header with HEAD (no body).
pub async fn head(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    path: &str,
    query: &str,
) -> Result<ResponseHeader, FetchError> {
    let prepared = RequestHeader::build("HEAD", b"/", None).map_err(|e| failed(e.to_string()))?;
    let req = origin
        .request(path, query, &prepared, SystemTime::now())
        .map_err(failed)?;
    metrics.slices.origin_head_requests.inc();
    let (session, resp, _) = exchange(connector, origin, metrics, req).await?;
    // A HEAD answer has no body; the connection is not reused, to be safe.
    drop(session);
    Ok(resp)
}

/// What one slice fetch needs to know.
pub struct SliceJob {
    pub path: String,
    pub query: String,
    pub key: CacheKey,
    /// Byte span of the slice in the object, end exclusive.
    pub start: u64,
    pub end: u64,
    pub object_len: u64,
    pub etag: String,
    pub header: ResponseHeader,
    pub fresh_until: SystemTime,
}

/// Fetches one slice with a Range GET pinned by `If-Match`, writing it into
/// the store. `started` is called once the fill is visible to lookups
/// (readers can follow it from then on).
pub async fn fetch_slice(
    engine: &'static Engine,
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    job: &SliceJob,
    started: impl FnOnce(),
) -> Result<(), FetchError> {
    let mut prepared =
        RequestHeader::build("GET", b"/", None).map_err(|e| failed(e.to_string()))?;
    let range = format!("bytes={}-{}", job.start, job.end - 1);
    prepared
        .insert_header("range", &range)
        .map_err(|e| failed(e.to_string()))?;
    prepared
        .insert_header("if-match", &job.etag)
        .map_err(|e| failed(e.to_string()))?;
    let req = origin
        .request(&job.path, &job.query, &prepared, SystemTime::now())
        .map_err(failed)?;
    metrics.slices.origin_range_requests.inc();
    let (mut session, resp, peer) = exchange(connector, origin, metrics, req).await?;
    match resp.status.as_u16() {
        206 => {}
        412 => return Err(FetchError::VersionChanged),
        s => return Err(failed(format!("origin answered {s} to a slice request"))),
    }
    let etag = resp.headers.get(http::header::ETAG).map(|v| v.as_bytes());
    if etag != Some(job.etag.as_bytes()) {
        return Err(FetchError::VersionChanged);
    }
    let want_range = format!("bytes {}-{}/{}", job.start, job.end - 1, job.object_len);
    let got_range = resp
        .headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    if got_range != Some(want_range.as_str()) {
        // Another length is another version; anything else is a bad answer.
        let other_len = got_range
            .and_then(|v| v.rsplit_once('/'))
            .is_some_and(|(_, l)| l != job.object_len.to_string());
        return Err(if other_len {
            FetchError::VersionChanged
        } else {
            failed(format!("origin sent {got_range:?} for {want_range}"))
        });
    }
    let len = job.end - job.start;
    let mut header = job.header.clone();
    let _ = header.insert_header(http::header::CONTENT_LENGTH, len);
    let meta = CacheMeta::new(job.fresh_until, SystemTime::now(), 0, 0, header);
    let span = Span::inactive();
    let mut miss = engine
        .store
        .get_miss_handler(&job.key, &meta, &span.handle())
        .await
        .map_err(|e| failed(format!("slice store: {e}")))?;
    started();
    let mut written = 0u64;
    loop {
        let chunk: Option<Bytes> = session
            .read_response_body()
            .await
            .map_err(|e| failed(format!("origin body: {e}")))?;
        let Some(chunk) = chunk else { break };
        written += chunk.len() as u64;
        metrics.origin_bytes.inc_by(chunk.len() as u64);
        if written > len {
            return Err(failed("origin sent more than the slice"));
        }
        miss.write_body(chunk, written == len)
            .await
            .map_err(|e| failed(format!("slice store: {e}")))?;
    }
    if written != len {
        return Err(failed(format!(
            "origin sent {written} of {len} slice bytes"
        )));
    }
    let entry_id = miss.entry_id();
    let finished = miss
        .finish()
        .await
        .map_err(|e| failed(format!("slice store: {e}")))?;
    if session.response_done() {
        connector.release_http_session(session, &peer, None).await;
    }
    let size = match finished {
        MissFinishType::Created(size) | MissFinishType::Appended(size, _) => size,
    };
    admit(engine, &job.key, entry_id, size, job.fresh_until).await;
    Ok(())
}

/// Tells the eviction manager about a new entry and removes what it evicts.
pub async fn admit(
    engine: &'static Engine,
    key: &CacheKey,
    entry_id: Option<pingora_cache::eviction::CacheEntryId>,
    size: usize,
    fresh_until: SystemTime,
) {
    let entry = CacheEntryKey::from_entry_id(key.to_compact(), entry_id);
    let evicted = engine.eviction.admit(entry, size, fresh_until);
    let span = Span::inactive();
    for item in evicted {
        if let Err(e) = engine
            .store
            .purge(
                PurgeTarget::Exact(&item),
                PurgeType::Eviction,
                &span.handle(),
            )
            .await
        {
            tracing::warn!(error = %e, "could not evict a cached object");
        }
    }
}

/// Stores the object's record (a body-less entry).
pub async fn store_record(engine: &'static Engine, key: &CacheKey, meta: &CacheMeta) {
    let span = Span::inactive();
    let miss = match engine
        .store
        .get_miss_handler(key, meta, &span.handle())
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "could not store an object record");
            return;
        }
    };
    let entry_id = miss.entry_id();
    match miss.finish().await {
        Ok(MissFinishType::Created(size) | MissFinishType::Appended(size, _)) => {
            admit(engine, key, entry_id, size, meta.fresh_until()).await;
        }
        Err(e) => tracing::debug!(error = %e, "could not store an object record"),
    }
}

/// Shared by the slice fetches of the process.
pub type SharedConnector = Arc<Connector>;
