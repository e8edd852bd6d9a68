//! Talking to the origin for sliced objects (a probe GET of the first bytes
//! or a HEAD for the record, signed Range GETs pinned to one ETag with
//! `If-Match` for slices) and writing what comes back into the disk store.
//!
//! A slice is normally one Range GET. A client seeking into the middle of a
//! slice nobody has fetched yet gets a split fetch instead: two Range GETs,
//! `[seek, slice end)` first and `[slice start, seek)` as soon as the first
//! is answered, running side by side. The part from the seek on streams
//! straight to that client as it arrives, so its first byte does not wait
//! for the bytes before the seek; the store is still written in order (the
//! part before the seek, then the other, whose bytes are held in memory
//! meanwhile: at most one slice). The slice is complete in the store only
//! when both parts arrived whole.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::ErrorType;
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{MissFinishType, MissHandler, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::mpsc;

use crate::cache::engine::Engine;
use crate::metrics::{Metrics, status_class};
use crate::origin::Origin;

/// Why a slice could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The origin's object is no longer the version the slice was asked for.
    VersionChanged,
    /// The origin did not answer in time.
    TimedOut(String),
    /// Anything else: origin unreachable or failing, short body, disk.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::VersionChanged => f.write_str("the object changed at the origin"),
            FetchError::TimedOut(why) | FetchError::Failed(why) => f.write_str(why),
        }
    }
}

fn failed(why: impl Into<String>) -> FetchError {
    FetchError::Failed(why.into())
}

/// An origin transport error, keeping timeouts apart.
fn transport(what: &str, e: &pingora::Error) -> FetchError {
    let why = format!("{what}: {e}");
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            FetchError::TimedOut(why)
        }
        _ => FetchError::Failed(why),
    }
}

/// Bytes of one response body as the origin sends them, or why they stop.
pub type Chunks = mpsc::UnboundedReceiver<Result<Bytes, FetchError>>;

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
        .map_err(|e| transport("origin connect", &e))?;
    session.set_read_timeout(Some(origin.config.read_timeout));
    session.set_write_timeout(Some(origin.config.read_timeout));
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| transport("origin request", &e))?;
    session
        .read_response_header()
        .await
        .map_err(|e| transport("origin response", &e))?;
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

/// What a probe GET brought back.
pub struct Probe {
    /// The origin's answer.
    pub resp: ResponseHeader,
    /// The object's length, when the answer is a 206 starting at byte 0
    /// (`Content-Range: bytes 0-E/T`).
    pub total: Option<u64>,
    /// The whole object, when the answer held all of it (T at most the
    /// probe's length and exactly T bytes came).
    pub body: Option<Bytes>,
}

/// The object length of a `Content-Range: bytes 0-E/T` answer whose span
/// is `0..=E` with E < T; anything else (another start, `*`, garbage) is
/// `None`.
fn span_from_zero(resp: &ResponseHeader) -> Option<(u64, u64)> {
    let v = resp
        .headers
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(start) && all_digits(end) && all_digits(total)) {
        return None;
    }
    let (start, end, total): (u64, u64, u64) =
        (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (start == 0 && end < total).then_some((end, total))
}

/// Asks the origin for the object's first `len` bytes with a Range GET (no
/// `If-Match`: the version is not known yet). When the answer is a 206
/// holding the whole object, its body is read (at most `len` bytes);
/// otherwise only the header is kept and the connection dropped.
pub async fn probe(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    path: &str,
    query: &str,
    len: u64,
) -> Result<Probe, FetchError> {
    let mut prepared =
        RequestHeader::build("GET", b"/", None).map_err(|e| failed(e.to_string()))?;
    prepared
        .insert_header("range", format!("bytes=0-{}", len - 1))
        .map_err(|e| failed(e.to_string()))?;
    let req = origin
        .request(path, query, &prepared, SystemTime::now())
        .map_err(failed)?;
    metrics.slices.origin_probe_requests.inc();
    let (mut session, resp, peer) = exchange(connector, origin, metrics, req).await?;
    let span = (resp.status.as_u16() == 206)
        .then(|| span_from_zero(&resp))
        .flatten();
    let Some((end, total)) = span else {
        // Not a usable answer: its body is not read, nor the connection reused.
        return Ok(Probe {
            resp,
            total: None,
            body: None,
        });
    };
    if total > len || end + 1 != total {
        drop(session);
        return Ok(Probe {
            resp,
            total: Some(total),
            body: None,
        });
    }
    let mut body = Vec::with_capacity(total as usize);
    while let Some(chunk) = next_chunk(&mut session, metrics).await? {
        if (body.len() + chunk.len()) as u64 > total {
            return Err(failed("origin sent more than the probed span"));
        }
        body.extend_from_slice(&chunk);
    }
    if body.len() as u64 != total {
        return Err(failed(format!(
            "origin sent {} of {total} probed bytes",
            body.len()
        )));
    }
    if session.response_done() {
        connector.release_http_session(session, &peer, None).await;
    }
    Ok(Probe {
        resp,
        total: Some(total),
        body: Some(Bytes::from(body)),
    })
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

/// Where to split a slice fetch, and who gets the second part as it comes.
pub struct Split {
    /// Object offset of the second part's first byte, inside the slice.
    pub at: u64,
    pub client: mpsc::UnboundedSender<Result<Bytes, FetchError>>,
}

/// Where the fetch runs.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub engine: &'static Engine,
    pub connector: &'static Connector,
    pub origin: &'a Arc<Origin>,
    pub metrics: &'a Arc<Metrics>,
}

/// Sends a Range GET for `[from, to)` of the job's object pinned by
/// `If-Match`, and checks the answer is exactly that span of that version.
async fn open_span(
    ctx: Ctx<'_>,
    job: &SliceJob,
    from: u64,
    to: u64,
) -> Result<(HttpSession, HttpPeer), FetchError> {
    let mut prepared =
        RequestHeader::build("GET", b"/", None).map_err(|e| failed(e.to_string()))?;
    let range = format!("bytes={}-{}", from, to - 1);
    prepared
        .insert_header("range", &range)
        .map_err(|e| failed(e.to_string()))?;
    prepared
        .insert_header("if-match", &job.etag)
        .map_err(|e| failed(e.to_string()))?;
    let req = ctx
        .origin
        .request(&job.path, &job.query, &prepared, SystemTime::now())
        .map_err(failed)?;
    ctx.metrics.slices.origin_range_requests.inc();
    let (session, resp, peer) = exchange(ctx.connector, ctx.origin, ctx.metrics, req).await?;
    match resp.status.as_u16() {
        206 => {}
        412 => return Err(FetchError::VersionChanged),
        s => return Err(failed(format!("origin answered {s} to a slice request"))),
    }
    let etag = resp.headers.get(http::header::ETAG).map(|v| v.as_bytes());
    if etag != Some(job.etag.as_bytes()) {
        return Err(FetchError::VersionChanged);
    }
    let want_range = format!("bytes {}-{}/{}", from, to - 1, job.object_len);
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
    Ok((session, peer))
}

/// The next body chunk of a span, counting origin bytes; `None` at its end.
async fn next_chunk(
    session: &mut HttpSession,
    metrics: &Metrics,
) -> Result<Option<Bytes>, FetchError> {
    let chunk = session
        .read_response_body()
        .await
        .map_err(|e| transport("origin body", &e))?;
    if let Some(c) = &chunk {
        metrics.origin_bytes.inc_by(c.len() as u64);
    }
    Ok(chunk)
}

/// Writes into the slice's fill, refusing more than the slice holds.
struct Filler {
    miss: MissHandler,
    written: u64,
    len: u64,
}

impl Filler {
    async fn write(&mut self, chunk: Bytes) -> Result<(), FetchError> {
        self.written += chunk.len() as u64;
        if self.written > self.len {
            return Err(failed("origin sent more than the slice"));
        }
        self.miss
            .write_body(chunk, self.written == self.len)
            .await
            .map_err(|e| failed(format!("slice store: {e}")))
    }
}

/// Fetches one slice, writing it into the store: one Range GET, or with
/// `split` two (see the module header). The part after the split is asked
/// first and streams to the client as soon as its answer is checked; the
/// part before it is asked next. `started` is called once the fill is
/// visible to lookups (readers can follow it from then on), after the
/// origin answers were checked.
pub async fn fetch_slice(
    ctx: Ctx<'_>,
    job: &SliceJob,
    split: Option<Split>,
    started: impl FnOnce(),
) -> Result<(), FetchError> {
    let split = split.filter(|s| s.at > job.start && s.at < job.end);
    let first_end = split.as_ref().map_or(job.end, |s| s.at);
    let held = match split {
        Some(Split { client, .. }) => match open_span(ctx, job, first_end, job.end).await {
            Ok((session, peer)) => Some(stream_second(
                ctx,
                session,
                peer,
                job.end - first_end,
                client,
            )),
            Err(e) => {
                let _ = client.send(Err(e.clone()));
                return Err(e);
            }
        },
        None => None,
    };
    let (mut session, peer) = open_span(ctx, job, job.start, first_end).await?;
    let len = job.end - job.start;
    let mut header = job.header.clone();
    let _ = header.insert_header(http::header::CONTENT_LENGTH, len);
    let meta = CacheMeta::new(job.fresh_until, SystemTime::now(), 0, 0, header);
    let span = Span::inactive();
    let miss = ctx
        .engine
        .store
        .get_miss_handler(&job.key, &meta, &span.handle())
        .await
        .map_err(|e| failed(format!("slice store: {e}")))?;
    let mut fill = Filler {
        miss,
        written: 0,
        len,
    };
    started();
    while let Some(chunk) = next_chunk(&mut session, ctx.metrics).await? {
        fill.write(chunk).await?;
    }
    if fill.written != first_end - job.start {
        return Err(failed(format!(
            "origin sent {} of {} slice bytes",
            fill.written,
            first_end - job.start
        )));
    }
    if session.response_done() {
        ctx.connector
            .release_http_session(session, &peer, None)
            .await;
    }
    if let Some(mut held) = held {
        while let Some(chunk) = held.recv().await {
            fill.write(chunk?).await?;
        }
    }
    if fill.written != len {
        return Err(failed(format!(
            "origin sent {} of {len} slice bytes",
            fill.written
        )));
    }
    let Filler { miss, .. } = fill;
    let entry_id = miss.entry_id();
    let finished = miss
        .finish()
        .await
        .map_err(|e| failed(format!("slice store: {e}")))?;
    let size = match finished {
        MissFinishType::Created(size) | MissFinishType::Appended(size, _) => size,
    };
    admit(ctx.engine, &job.key, entry_id, size, job.fresh_until).await;
    Ok(())
}

/// Reads the second part of a split fetch on its own task, passing each
/// chunk to the client and to the returned receiver (the store's side,
/// which holds them until the first part is written). A failure reaches
/// both; a client gone is no failure.
fn stream_second(
    ctx: Ctx<'_>,
    mut session: HttpSession,
    peer: HttpPeer,
    len: u64,
    client: mpsc::UnboundedSender<Result<Bytes, FetchError>>,
) -> Chunks {
    let (store, held) = mpsc::unbounded_channel();
    let (connector, metrics) = (ctx.connector, ctx.metrics.clone());
    tokio::spawn(async move {
        let mut got = 0u64;
        let res = loop {
            if client.is_closed() && store.is_closed() {
                return;
            }
            match next_chunk(&mut session, &metrics).await {
                Ok(Some(chunk)) => {
                    got += chunk.len() as u64;
                    if got > len {
                        break Err(failed("origin sent more than the slice"));
                    }
                    let _ = client.send(Ok(chunk.clone()));
                    let _ = store.send(Ok(chunk));
                }
                Ok(None) if got == len => break Ok(()),
                Ok(None) => break Err(failed(format!("origin sent {got} of {len} slice bytes"))),
                Err(e) => break Err(e),
            }
        };
        match res {
            Ok(()) => {
                if session.response_done() {
                    connector.release_http_session(session, &peer, None).await;
                }
            }
            Err(e) => {
                let _ = client.send(Err(e.clone()));
                let _ = store.send(Err(e));
            }
        }
    });
    held
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

/// Stores a small entry at once, body and all (an object's record has no
/// body; a whole object a probe brought has one), and admits it for
/// eviction. A failure only means it is not kept.
pub async fn store_entry(
    engine: &'static Engine,
    key: &CacheKey,
    meta: &CacheMeta,
    body: Option<Bytes>,
) {
    let span = Span::inactive();
    let stored = async {
        let mut miss = engine
            .store
            .get_miss_handler(key, meta, &span.handle())
            .await?;
        if let Some(body) = body {
            miss.write_body(body, true).await?;
        }
        let entry_id = miss.entry_id();
        let finished = miss.finish().await?;
        Ok::<_, Box<pingora::Error>>((entry_id, finished))
    };
    match stored.await {
        Ok((entry_id, MissFinishType::Created(size) | MissFinishType::Appended(size, _))) => {
            admit(engine, key, entry_id, size, meta.fresh_until()).await;
        }
        Err(e) => tracing::debug!(error = %e, "could not store a cache entry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_range: Option<&str>) -> ResponseHeader {
        let mut resp = ResponseHeader::build(206, None).unwrap();
        if let Some(v) = content_range {
            resp.insert_header("content-range", v).unwrap();
        }
        resp
    }

    #[test]
    fn only_a_span_from_byte_zero_within_the_length_is_taken() {
        // (Content-Range, the (E, T) taken)
        type Case = (Option<&'static str>, Option<(u64, u64)>);
        let cases: &[Case] = &[
            (Some("bytes 0-2999/3000"), Some((2999, 3000))),
            (Some("bytes 0-65535/65536"), Some((65535, 65536))),
            (Some("bytes 0-65535/65537"), Some((65535, 65537))),
            (Some("bytes 0-0/1"), Some((0, 1))),
            // Shorter than asked although the object is longer: a span.
            (Some("bytes 0-99/3000"), Some((99, 3000))),
            (Some("bytes 1-2999/3000"), None),
            (Some("bytes 0-2999/*"), None),
            (Some("bytes */3000"), None),
            (Some("bytes 0-3000/3000"), None),
            (Some("bytes 0-2999"), None),
            (Some("bytes -0-2999/3000"), None),
            (Some("bytes 0-+2999/3000"), None),
            (Some("items 0-2999/3000"), None),
            (Some("garbage"), None),
            (None, None),
        ];
        for (header, want) in cases {
            assert_eq!(span_from_zero(&answer(*header)), *want, "{header:?}");
        }
    }
}
