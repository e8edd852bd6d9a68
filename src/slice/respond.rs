//! Writing the answer for a sliced object: the header from its record,
//! the body slice by slice, each read from the store, followed while its
//! fetch fills it, or (for a seek into a slice nobody fetches yet) taken
//! straight from a split fetch.

use bytes::Bytes;
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::storage::{HitHandler, Storage};
use pingora_cache::trace::Span;
use pingora_http::ResponseHeader;
use tokio::sync::watch;

use super::fetch::{Chunks, FetchError, SliceJob};
use super::inflight::FetchState;
use super::info::ObjectInfo;
use super::{Request, add_cache_fields};
use crate::auth::Renewed;
use crate::cache::key::slice as keys;
use crate::cache::status::CacheStatus;
use crate::range::multipart::{self, Multipart};

pub(super) enum Failure {
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
pub(super) async fn next_direct(chunks: &mut Chunks, n: u64) -> Result<Bytes, Failure> {
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
pub(super) enum Reader {
    /// The store: a complete slice, or a fill being written.
    Store(HitHandler),
    /// The second part of a split fetch this request started, from the
    /// requested offset on, as the origin sends it (its first chunk taken).
    Direct(Option<Bytes>, Chunks),
}

impl Request {
    pub(super) fn job(&self, info: &ObjectInfo, key: CacheKey, n: u64) -> SliceJob {
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
            hops: self.hops.clone(),
        }
    }

    /// Writes the answer: header from the record, body from slices. A
    /// request that `learnt` the object from the origin is a miss.
    pub(super) async fn respond(
        &self,
        session: &mut Session,
        info: &ObjectInfo,
        renewal: Option<&Renewed>,
        learnt: bool,
    ) -> Result<CacheStatus, Failure> {
        let mut header = info.client_header();
        let range = crate::range::apply(session.req_header(), &mut header);
        let (parts, framing) = multipart::parts(&range, info.len);
        let size = self.slicer.config.size;
        let prefix = keys::slice_prefix(&self.primary, &keys::version_tag(&info.etag));
        let all_here = parts.iter().all(|r| {
            (r.start / size..=(r.end - 1) / size)
                .all(|n| self.engine.store.contains(&keys::slice_at(&prefix, n)))
        });
        let status = if all_here && !learnt {
            CacheStatus::Hit
        } else {
            CacheStatus::Miss
        };
        add_cache_fields(self.engine, &mut header, status, renewal);
        // Before anything is sent: the first slice decides whether the
        // version still holds, so a change can start over cleanly.
        let Some(first_part) = parts.first() else {
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(client_gone)?;
            return Ok(status);
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
        let span_end = parts.iter().map(|r| r.end).max().unwrap_or(first_part.end);
        let ahead_until = self.slicer.read_ahead_until(
            &self.primary,
            (first_part.start, span_end),
            info.slices(size),
        );
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
                let until = (n + read_ahead).min(ahead_until).min(last_slice);
                if read_ahead > 0 && n < until {
                    self.read_ahead(info, &prefix, n + 1..=until);
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
        Ok(status)
    }

    /// Answers from the whole object the probe that learnt it is writing
    /// into the store under its own key (`header`: its 200, with its
    /// length), each part read from the fill as it arrives. The answer ends
    /// once the fill has ended, so what follows it finds the object stored.
    /// `false`, with nothing sent, when the store no longer offers it (a
    /// short fill may be done and evicted before this request looks); a
    /// 502 when the fill failed before this request looked.
    pub(super) async fn respond_fill(
        &self,
        session: &mut Session,
        (header, len, mut done): (&ResponseHeader, u64, watch::Receiver<Option<bool>>),
        renewal: Option<&Renewed>,
    ) -> Result<bool, Box<Error>> {
        let mut header = header.clone();
        let range = crate::range::apply(session.req_header(), &mut header);
        let (parts, framing) = multipart::parts(&range, len);
        add_cache_fields(self.engine, &mut header, CacheStatus::Miss, renewal);
        let head = session.req_header().method == http::Method::HEAD;
        if head || parts.is_empty() {
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(|e| e.into_down())?;
            return Ok(true);
        }
        // Held from here on: an eviction no longer takes the bytes away.
        let (key, span) = (self.whole_key(), Span::inactive());
        let found = self.engine.store.lookup(&key, &span.handle()).await?;
        let Some((_, mut hit)) = found else {
            // A failed fill is this request's failure; only a stored one
            // that was evicted since leaves it to the ordinary path.
            if *done.borrow() == Some(false) {
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    "the origin's answer broke off",
                );
            }
            return Ok(false);
        };
        session
            .write_response_header(Box::new(header), false)
            .await
            .map_err(|e| e.into_down())?;
        for r in &parts {
            if let Some(m) = &framing {
                session
                    .write_response_body(Some(m.part_head(r)), false)
                    .await
                    .map_err(|e| e.into_down())?;
            }
            hit.seek(r.start as usize, Some(r.end as usize))?;
            while let Some(chunk) = hit.read_body().await? {
                session
                    .write_response_body(Some(chunk), false)
                    .await
                    .map_err(|e| e.into_down())?;
            }
        }
        // The bytes sent came from the fill as it was written (a failed
        // fill fails the read), so an answer that stops short of the
        // object's end is whole already; one that reaches it also waits
        // for the fill's outcome, so that it never ends cleanly on a fill
        // that failed at its last step. Waiting in every case would hold a
        // range at the start until the whole object had arrived.
        let to_the_end = parts.iter().any(|r| r.end >= len);
        if to_the_end {
            let stored = done.wait_for(Option::is_some).await.ok().and_then(|d| *d);
            if stored != Some(true) {
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    "the object's fill failed while it was sent",
                );
            }
        }
        let tail = framing.as_ref().map(Multipart::tail).unwrap_or_default();
        session
            .write_response_body(Some(tail), true)
            .await
            .map_err(|e| e.into_down())?;
        Ok(true)
    }

    /// A reader of slice `n`: from disk, or following a fetch (ours or one
    /// already under way). With `seek` past the slice's start and no fetch
    /// under way, the fetch is split there and the reader starts at `seek`.
    pub(super) async fn slice(
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
}
