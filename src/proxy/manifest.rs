//! Manifests given the requesting student's token: an HLS playlist or a
//! DASH MPD asked for with the token in a query parameter is sent with that
//! token added to every URI that stays on this host ([`crate::manifest`]),
//! so a player fetches renditions and segments with it. The stored
//! manifest stays the origin's, token-free: one copy serves every student.
//!
//! Two ways in:
//! - The `Manifest` route (a `.m3u8` or `.mpd` path): a fresh manifest in
//!   the store is read whole, rewritten and answered here, with an exact
//!   `Content-Length` and `Range` answered from the rewritten body. Anything
//!   else (not stored, stale, too large) takes the `Cache` route.
//! - Pingora's path (a miss, a revalidation, or a manifest known only by its
//!   `Content-Type`): the body is gathered as it comes and sent rewritten at
//!   its end, without `Content-Length` (chunked), and a `Range` is not
//!   applied (the whole 200 is a valid answer; the next request, a hit, gets
//!   its 206).
//!
//! A rewritten answer carries no strong `ETag` of the stored one: its bytes
//! differ per student. A manifest over `cache.manifest_max_size`, or one
//! that does not parse, is sent as stored, and counted. A gzip-coded one
//! ([`Coding`]) is inflated for the rewrite and sent coded again, under
//! the stored `Content-Encoding`.

mod plans;

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::Storage;
use pingora_cache::trace::Span;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::RangeType;

use super::admit::Admitted;
use super::ctx::RequestCtx;
use super::lane::Form;
use super::memory_hit;
use crate::answer;
use crate::auth::Verifier;
use crate::auth::settings::TokenSource;
use crate::cache::engine::Engine;
use crate::cache::status::CacheStatus;
use crate::cache::store::{MemoryHit, wire};
use crate::manifest::{self, Coding, Kind, Token};
use crate::metrics::Metrics;
use crate::range::multipart;
use crate::request::{host, query};

/// What a rewrite of one request's manifest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    param: String,
    value: String,
    host: Option<String>,
    known: Vec<String>,
}

impl Propagation {
    /// The token of an admitted request whose token came in a query
    /// parameter: the renewed one when the node renewed it into a header
    /// (`cdnistt` 2), else the one sent.
    pub fn of(
        req: &RequestHeader,
        admitted: &Admitted,
        verifier: &Verifier,
    ) -> Option<Propagation> {
        let sources = verifier.token_sources();
        let TokenSource::Query(param) = sources.get(admitted.token_query?)? else {
            return None;
        };
        let renewed = admitted
            .renewal
            .as_ref()
            .filter(|r| r.name != http::header::SET_COOKIE)
            .map(|r| r.value.clone());
        let value = match renewed {
            Some(value) => value,
            None => {
                let pairs = query::parse(req.uri.query().unwrap_or("")).ok()?;
                let (_, value) = pairs.into_iter().find(|(name, _)| name == param)?;
                value.into_owned()
            }
        };
        let host = host::of(req).map(str::to_owned);
        let known = sources
            .iter()
            .filter_map(|s| match s {
                TokenSource::Query(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        Some(Propagation {
            param: param.clone(),
            value,
            host,
            known,
        })
    }

    fn rewrite(
        &self,
        kind: Kind,
        coded: Coded,
        body: &[u8],
    ) -> Result<Vec<u8>, manifest::Unchanged> {
        self.with_token(|token, host| {
            manifest::rewrite_coded(kind, coded.coding, coded.limit, body, token, host)
        })
    }

    /// A stored copy held in memory, rewritten: an HLS playlist from its
    /// kept plan ([`plans`]).
    fn rewrite_held(
        &self,
        kind: Kind,
        coded: Coded,
        body: &Bytes,
    ) -> Result<Vec<u8>, manifest::Unchanged> {
        match kind {
            Kind::Hls => self.with_token(|token, host| {
                plans::rewrite_hls(body, coded.coding, coded.limit, token, host)
            }),
            Kind::Dash => self.rewrite(kind, coded, body),
        }
    }

    fn with_token<T>(&self, f: impl FnOnce(&Token<'_>, Option<&str>) -> T) -> T {
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        let token = Token {
            param: &self.param,
            value: &self.value,
            known_params: &known,
        };
        f(&token, self.host.as_deref())
    }
}

/// How a stored manifest's body is coded, and the most its text may be.
#[derive(Debug, Clone, Copy)]
pub struct Coded {
    coding: Coding,
    /// `cache.manifest_max_size`.
    limit: usize,
}

impl Coded {
    fn of(header: &ResponseHeader, limit: u64) -> Coded {
        let values = header.headers.get_all(CONTENT_ENCODING);
        Coded {
            coding: Coding::of(values.iter().map(|v| v.as_bytes())),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    fn stored(engine: &Engine, header: &ResponseHeader) -> Coded {
        Coded::of(header, engine.config.manifest_max_size)
    }
}

/// A manifest answer on Pingora's path.
pub enum Pending {
    /// The path names a manifest; its answer has not been seen yet.
    Expected(Propagation),
    /// A manifest answer whose body is gathered for the rewrite.
    Gathering {
        kind: Kind,
        coded: Coded,
        propagation: Propagation,
        body: Vec<u8>,
        /// The stored body's length: a miss streamed from its fill ends
        /// without a last call marked as the end, so the length tells it.
        len: usize,
    },
    /// Sent as it comes.
    Passing,
}

/// The manifest kind of a path, as the `Manifest` route is chosen.
pub fn kind_of_path(path: &str) -> Option<Kind> {
    manifest::kind(path, None)
}

fn content_length(header: &ResponseHeader) -> Option<usize> {
    header
        .headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `W/"..."` for a strong `ETag`: the rewritten bytes are not the stored ones.
fn weaken_etag(header: &mut ResponseHeader) {
    let weak = match header.headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        Some(tag) if !tag.starts_with("W/") => format!("W/{tag}"),
        _ => return,
    };
    let _ = header.insert_header(ETAG, weak);
}

/// Answers a fresh manifest held in the store, rewritten; `false` when the
/// request must take the `Cache` route instead (nothing sent then). Memory
/// is asked first, as for a memory hit; then the disk.
pub async fn serve_stored(
    engine: &'static Engine,
    metrics: &Metrics,
    session: &mut Session,
    key: &CacheKey,
    kind: Kind,
    propagation: &Propagation,
    renewal: Option<&crate::auth::Renewed>,
) -> Result<bool> {
    if let Some(hit) = memory_hit::held(engine, key)? {
        if !fits(engine, &hit.header) {
            return Ok(false);
        }
        let coded = Coded::stored(engine, &hit.header);
        let (header, stored) = told_hit(engine, hit, Form::Http1)?;
        let answer = Rewritten {
            kind,
            coded,
            propagation,
            renewal,
        };
        answer.send(session, header, stored, metrics).await?;
        return Ok(true);
    }
    let span = Span::inactive();
    let Some((meta, mut hit)) = engine.store.lookup(key, &span.handle()).await? else {
        return Ok(false);
    };
    let stored = meta.response_header();
    if !meta.is_fresh(SystemTime::now()) || stored.status != 200 || !fits(engine, stored) {
        return Ok(false);
    }
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        body.extend_from_slice(&chunk);
    }
    if hit.should_count_access() {
        let entry = CacheEntryKey::from_entry_id(key.to_compact(), hit.entry_id());
        engine
            .eviction
            .access(&entry, hit.get_eviction_weight(), meta.fresh_until());
    }
    let mut header = meta.response_header_copy();
    header.insert_header(AGE, meta.age().as_secs())?;
    crate::range::advertise(&mut header);
    let name = engine.config.status_header.as_deref();
    answer::add_cache_fields(&mut header, name, CacheStatus::Hit, None)?;
    let answer = Rewritten {
        kind,
        coded: Coded::stored(engine, &header),
        propagation,
        renewal,
    };
    answer
        .send(session, header, Stored::Read(body.into()), metrics)
        .await?;
    Ok(true)
}

/// Whether a stored manifest is small enough to be rewritten
/// (`cache.manifest_max_size`).
fn fits(engine: &Engine, header: &ResponseHeader) -> bool {
    let limit = usize::try_from(engine.config.manifest_max_size).unwrap_or(usize::MAX);
    content_length(header).is_some_and(|len| len <= limit)
}

/// The copy memory holds of a manifest, its access told: its header with
/// `Age`, and its body.
fn told_hit(
    engine: &'static Engine,
    hit: MemoryHit,
    form: Form,
) -> Result<(ResponseHeader, Stored)> {
    memory_hit::told(engine, &hit);
    let mut header = memory_hit::header_to_edit(hit.header, form);
    header.insert_header(AGE, hit.age.as_secs())?;
    Ok((header, Stored::Held(hit.body)))
}

/// The copy memory holds of a manifest when it is one the `Manifest`
/// route rewrites from memory (small enough): what the hit lane asks
/// before it commits to the request ([`answer_held`]).
pub fn held_copy(engine: &'static Engine, key: &CacheKey) -> Result<Option<MemoryHit>> {
    Ok(memory_hit::held(engine, key)?.filter(|hit| fits(engine, &hit.header)))
}

/// The whole answer of a copy [`held_copy`] found, given the token: the
/// `Manifest` route's answer to a request without `Range`.
pub fn answer_held(
    engine: &'static Engine,
    metrics: &Metrics,
    hit: MemoryHit,
    kind: Kind,
    propagation: &Propagation,
    renewal: Option<&crate::auth::Renewed>,
    form: Form,
) -> Result<(ResponseHeader, Bytes)> {
    let coded = Coded::stored(engine, &hit.header);
    let (header, stored) = told_hit(engine, hit, form)?;
    let answer = Rewritten {
        kind,
        coded,
        propagation,
        renewal,
    };
    answer.whole(header, stored, metrics)
}

/// The body of a copy [`held_copy`] found, given the token, for an answer
/// written from the copy's kept header ([`wire::Wire`]): the body, and how the
/// header changes with it (no renewed token: that is an edited header's).
pub fn kept_answer(
    engine: &'static Engine,
    metrics: &Metrics,
    hit: MemoryHit,
    kind: Kind,
    propagation: &Propagation,
) -> (Bytes, wire::Rewritten) {
    memory_hit::told(engine, &hit);
    let answer = Rewritten {
        kind,
        coded: Coded::stored(engine, &hit.header),
        propagation,
        renewal: None,
    };
    let (body, rewritten) = answer.body(Stored::Held(hit.body), metrics);
    let len = body.len();
    let change = wire::Rewritten {
        len,
        weaken_etag: rewritten,
    };
    (body, change)
}

/// A stored manifest's body.
enum Stored {
    /// The copy held in memory: its plan is kept.
    Held(Bytes),
    /// Read from the disk for this request.
    Read(Bytes),
}

/// A stored manifest's answer, given the token.
struct Rewritten<'a> {
    kind: Kind,
    coded: Coded,
    propagation: &'a Propagation,
    renewal: Option<&'a crate::auth::Renewed>,
}

impl Rewritten<'_> {
    /// Sends `stored` rewritten under `header` (a hit's, cache fields
    /// included): its length, a weak ETag, the renewed token, the range.
    async fn send(
        &self,
        session: &mut Session,
        header: ResponseHeader,
        stored: Stored,
        metrics: &Metrics,
    ) -> Result<()> {
        let (mut header, body) = self.whole(header, stored, metrics)?;
        let range = crate::range::apply(session.req_header(), &mut header);
        send_parts(session, header, body, &range).await
    }

    /// The whole answer of `stored` under `header`: the rewritten body (or
    /// the stored one when it does not parse), its length, a weak ETag and
    /// the renewed token.
    fn whole(
        &self,
        mut header: ResponseHeader,
        stored: Stored,
        metrics: &Metrics,
    ) -> Result<(ResponseHeader, Bytes)> {
        let (body, rewritten) = self.body(stored, metrics);
        if rewritten {
            weaken_etag(&mut header);
        }
        header.insert_header(CONTENT_LENGTH, body.len())?;
        if let Some(renewed) = self.renewal {
            header.append_header(renewed.name.clone(), renewed.value.as_str())?;
        }
        Ok((header, body))
    }

    /// The body to send: `stored` given the token, or as stored when it
    /// does not parse (counted either way); `true` when rewritten.
    fn body(&self, stored: Stored, metrics: &Metrics) -> (Bytes, bool) {
        let (rewritten, stored) = match stored {
            Stored::Held(body) => (
                self.propagation.rewrite_held(self.kind, self.coded, &body),
                body,
            ),
            Stored::Read(body) => (self.propagation.rewrite(self.kind, self.coded, &body), body),
        };
        match rewritten {
            Ok(rewritten) => {
                metrics.playback.manifests_rewritten.inc();
                (Bytes::from(rewritten), true)
            }
            Err(unchanged) => {
                tracing::debug!(reason = unchanged.as_str(), "manifest sent as stored");
                count_as_stored(metrics, unchanged.reason());
                (stored, false)
            }
        }
    }
}

/// Writes `header` and the parts of `body` that `range` asks for.
async fn send_parts(
    session: &mut Session,
    header: ResponseHeader,
    body: Bytes,
    range: &RangeType,
) -> Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let (parts, framing) = multipart::parts(range, body.len() as u64);
    // The whole body or one range: the header and the body in two writes
    // (one send on plain HTTP when both fit the connection's write buffer).
    if let ([part], None) = (parts.as_slice(), &framing) {
        let whole = part.start == 0 && part.end == body.len() as u64;
        let bytes = if whole {
            body
        } else {
            body.slice(part.start as usize..part.end as usize)
        };
        return answer::send_whole(session, header, bytes, head).await;
    }
    let empty = head || parts.is_empty();
    session
        .write_response_header(Box::new(header), empty)
        .await
        .map_err(|e| e.into_down())?;
    if empty {
        return Ok(());
    }
    for part in &parts {
        if let Some(m) = &framing {
            session
                .write_response_body(Some(m.part_head(part)), false)
                .await
                .map_err(|e| e.into_down())?;
        }
        let bytes = body.slice(part.start as usize..part.end as usize);
        session
            .write_response_body(Some(bytes), false)
            .await
            .map_err(|e| e.into_down())?;
    }
    let tail = framing.as_ref().map(|m| m.tail()).unwrap_or_default();
    session
        .write_response_body(Some(tail), true)
        .await
        .map_err(|e| e.into_down())
}

fn count_as_stored(metrics: &Metrics, reason: &str) {
    metrics
        .playback
        .manifests_as_stored
        .with_label_values(&[reason])
        .inc();
}

/// Decides, once the answer's header is known on Pingora's path, whether
/// its body is gathered for the rewrite; then drops what no longer holds
/// for the rewritten body (`Content-Length`, a strong `ETag`). `true` when
/// the answer is a manifest to rewrite: its `Range` must not be applied.
pub fn on_header(
    ctx: &mut RequestCtx,
    verifier: &Verifier,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    limit: u64,
    metrics: &Metrics,
) -> bool {
    if matches!(ctx.manifest, Some(Pending::Gathering { .. })) {
        return true;
    }
    if matches!(ctx.manifest, Some(Pending::Passing)) {
        return false;
    }
    let Some(admitted) = ctx.admitted.as_ref().filter(|a| a.token_query.is_some()) else {
        return false;
    };
    let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(kind) = manifest::kind(&admitted.path, content_type) else {
        return false;
    };
    let propagation = match ctx.manifest.take() {
        Some(Pending::Expected(p)) => Some(p),
        _ => Propagation::of(req, admitted, verifier),
    };
    // The rewritten body goes chunked: HTTP/1.0 has no way to send it.
    let framable = req.version != http::Version::HTTP_10 && req.version != http::Version::HTTP_09;
    let Some(propagation) = propagation.filter(|_| resp.status == 200 && framable) else {
        ctx.manifest = Some(Pending::Passing);
        return false;
    };
    let coded = Coded::of(resp, limit);
    let len = match content_length(resp) {
        Some(len) if len <= coded.limit => len,
        // S3 always sends the length of an object.
        too_large_or_unknown => {
            if too_large_or_unknown.is_some() {
                count_as_stored(metrics, "too_large");
            }
            ctx.manifest = Some(Pending::Passing);
            return false;
        }
    };
    resp.remove_header(&CONTENT_LENGTH);
    if req.version < http::Version::HTTP_2 {
        // Pingora frames an HTTP/1.1 answer without a length only when it
        // sees this field; HTTP/2 frames every body itself.
        let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    }
    weaken_etag(resp);
    ctx.manifest = Some(Pending::Gathering {
        kind,
        coded,
        propagation,
        body: Vec::with_capacity(len),
        len,
    });
    true
}

/// Gathers a manifest's body on Pingora's path and puts the rewritten one
/// in its place once all of it is there.
pub fn on_body(
    ctx: &mut RequestCtx,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    metrics: &Metrics,
) {
    let Some(Pending::Gathering {
        kind,
        coded,
        propagation,
        body: gathered,
        len,
    }) = ctx.manifest.as_mut()
    else {
        return;
    };
    if let Some(chunk) = body.take() {
        gathered.extend_from_slice(&chunk);
    }
    if !end_of_stream && gathered.len() < *len {
        return;
    }
    let stored = std::mem::take(gathered);
    *body = Some(Bytes::from(
        match propagation.rewrite(*kind, *coded, &stored) {
            Ok(rewritten) => {
                metrics.playback.manifests_rewritten.inc();
                rewritten
            }
            Err(unchanged) => {
                tracing::debug!(reason = unchanged.as_str(), "manifest sent as stored");
                count_as_stored(metrics, unchanged.reason());
                stored
            }
        },
    ));
    ctx.manifest = Some(Pending::Passing);
}
