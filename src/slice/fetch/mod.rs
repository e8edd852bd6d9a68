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
//!
//! The origin's side lives in `origin` (the requests and their checks), the
//! store's in `store` (writing fills and admitting them for eviction).

mod origin;
mod store;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::ErrorType;
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::storage::{MissFinishType, MissHandler, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use tokio::sync::mpsc;

use crate::cache::engine::Engine;
use crate::metrics::Metrics;
use crate::origin::Origin;
pub use origin::{head, probe, read_whole};
use origin::{next_chunk, open_span, stream_second};
use store::Filler;
pub use store::{admit, store_entry};

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
    /// The `CDN-Loop` entries of the request that started the fetch.
    pub hops: Option<http::HeaderValue>,
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
    let (session, peer) = open_span(ctx, job, job.start, first_end).await?;
    fill_slice(ctx, job, (session, peer), first_end, held, started).await
}

/// Writes a slice into the store from `opened`, an origin answer already
/// checked to hold `[job.start, first_end)` of the job's version, then from
/// `held` (the rest of a split fetch). `started` is called once the fill is
/// visible to lookups. The slice is complete in the store only when every
/// byte arrived.
pub async fn fill_slice(
    ctx: Ctx<'_>,
    job: &SliceJob,
    opened: (HttpSession, HttpPeer),
    first_end: u64,
    held: Option<Chunks>,
    started: impl FnOnce(),
) -> Result<(), FetchError> {
    let len = job.end - job.start;
    let mut header = job.header.clone();
    let _ = header.insert_header(http::header::CONTENT_LENGTH, len);
    let meta = CacheMeta::new(job.fresh_until, SystemTime::now(), 0, 0, header);
    let miss = open_fill(ctx.engine, &job.key, &meta).await?;
    started();
    let fill = Fill {
        key: &job.key,
        fresh_until: job.fresh_until,
        len,
        first_len: first_end - job.start,
    };
    write_fill(ctx, fill, miss, opened, held, || {}).await
}

/// A store entry being written from an origin answer.
pub struct Fill<'a> {
    pub key: &'a CacheKey,
    pub fresh_until: SystemTime,
    /// Its body's length.
    pub len: u64,
    /// The bytes the opened answer brings (the rest come held).
    pub first_len: u64,
}

/// Starts writing `key` into the store: visible to lookups from now on.
pub async fn open_fill(
    engine: &'static Engine,
    key: &CacheKey,
    meta: &CacheMeta,
) -> Result<MissHandler, FetchError> {
    let span = Span::inactive();
    engine
        .store
        .get_miss_handler(key, meta, &span.handle())
        .await
        .map_err(|e| failed(format!("store: {e}")))
}

/// Writes `fill`'s body into `miss`: the `first_len` bytes of `opened`,
/// then whatever `held` brings. Finished (committed) and admitted for
/// eviction only when every byte arrived; otherwise dropped unfinished
/// (not kept). `committed` is called between the commit and the admission
/// (which may take time to remove what it evicts).
pub async fn write_fill(
    ctx: Ctx<'_>,
    fill: Fill<'_>,
    miss: MissHandler,
    (mut session, peer): (HttpSession, HttpPeer),
    held: Option<Chunks>,
    committed: impl FnOnce(),
) -> Result<(), FetchError> {
    let len = fill.len;
    let mut filler = Filler {
        miss,
        written: 0,
        len,
    };
    while let Some(chunk) = next_chunk(&mut session, ctx.metrics).await? {
        filler.write(chunk).await?;
    }
    if filler.written != fill.first_len {
        return Err(failed(format!(
            "origin sent {} of {} bytes",
            filler.written, fill.first_len
        )));
    }
    if session.response_done() {
        ctx.connector
            .release_http_session(session, &peer, None)
            .await;
    }
    if let Some(mut held) = held {
        while let Some(chunk) = held.recv().await {
            filler.write(chunk?).await?;
        }
    }
    if filler.written != len {
        return Err(failed(format!(
            "origin sent {} of {len} bytes",
            filler.written
        )));
    }
    let Filler { miss, .. } = filler;
    let entry_id = miss.entry_id();
    let finished = miss
        .finish()
        .await
        .map_err(|e| failed(format!("store: {e}")))?;
    let size = match finished {
        MissFinishType::Created(size) | MissFinishType::Appended(size, _) => size,
    };
    committed();
    admit(ctx.engine, fill.key, entry_id, size, fill.fresh_until).await;
    Ok(())
}
