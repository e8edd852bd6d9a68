//! Learning an object: its record (length, version, headers) from the
//! store or, once per object however many requests arrive together, from
//! an origin HEAD or a probe GET of the first slice, which brings a small
//! object whole and a sliced one's slice 0.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::storage::{MissHandler, Storage};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use tokio::sync::watch;

use super::fetch::{self, FetchError};
use super::info::ObjectInfo;
use super::{OriginRefused, Request, lock};
use crate::cache::key::hashed as hashed_key;
use crate::cache::key::slice as keys;
use crate::cache::policy::Decision;
use crate::metrics::Collapsed;
use crate::origin::response::{self, Verdict, passes_header};

/// Headers of a probe's answer that are not the whole object's (its span,
/// and the connection's own).
const NOT_OF_THE_WHOLE: &[&str] = &[
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// What an origin HEAD or probe GET taught about an object.
#[derive(Clone)]
pub(super) enum Learned {
    Object(Arc<ObjectInfo>),
    /// A probe GET brought the whole object, not to be kept: its bytes.
    Whole(Arc<Whole>),
    /// A probe GET brings the whole object, written into the store as it
    /// comes: its 200 header, its length, and whether the fill ended
    /// stored (`None` while under way).
    Filling(Arc<ResponseHeader>, u64, watch::Receiver<Option<bool>>),
    /// Not a cacheable object with a length and an ETag, or the HEAD failed:
    /// the ordinary path answers (errors included).
    Pass,
    /// The origin did not answer in time: asking again would only double
    /// the client's wait.
    TimedOut(String),
    /// The origin answered with an error (any but 404): asking again would
    /// only double the load on an origin that is failing or throttling.
    Refused(Arc<OriginRefused>),
}

/// The `OriginRefused` an origin answer means, if it is an error other
/// than 404 (which the ordinary path answers, and may keep).
fn refused(resp: &ResponseHeader, s3_code: Option<String>) -> Option<OriginRefused> {
    let status = resp.status.as_u16();
    match response::verdict(status) {
        Verdict::Refuse {
            refusal,
            origin_error: Some(kind),
        } => Some(OriginRefused {
            refusal,
            kind,
            status,
            s3_code,
        }),
        _ => None,
    }
}

/// An object a probe GET brought whole.
pub(super) struct Whole {
    /// Its 200 header as clients get it (`Content-Length` included).
    pub(super) header: ResponseHeader,
    pub(super) body: Bytes,
}

impl Request {
    /// The stored record of the object, fresh or not, with its freshness.
    pub(super) async fn stored_record(&self) -> Option<(ObjectInfo, bool)> {
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
    pub(super) async fn record(&self) -> Option<Arc<ObjectInfo>> {
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
    pub(super) async fn learn_shared(&self, probe: bool) -> Learned {
        let mut rx = {
            let mut learning = lock(&self.slicer.learning);
            match learning.get(&self.primary) {
                Some(rx) => {
                    self.metrics.count_collapsed(Collapsed::Object);
                    rx.clone()
                }
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
    pub(super) fn whole_key(&self) -> CacheKey {
        hashed_key(self.primary.clone())
    }

    /// GETs the object's first slice (`slice_size` bytes) from the origin.
    /// A 206 from byte 0 with an ETag gives the object's length and
    /// version: the record is stored as after a HEAD. When the answer holds
    /// the whole object, that is stored too (before the record, so a
    /// request finding the record finds the object) and answered; when the
    /// object is sliced, the answer's bytes are its slice 0, stored as they
    /// come like any slice fetch. An error answer other than 404 is every
    /// waiting request's answer (`Refused`); any other answer: the ordinary
    /// path asks again and answers.
    pub(super) async fn probe(&self) -> Learned {
        let probe = match fetch::probe(
            &self.slicer.connector,
            &self.origin,
            &self.metrics,
            (&self.path, &self.query),
            self.hops.as_ref(),
            self.slicer.config.size,
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
        if let Some(r) = refused(&probe.resp, probe.s3_code.clone()) {
            return Learned::Refused(Arc::new(r));
        }
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
        let whole = probe.is_whole();
        let Decision::Store {
            fresh_until,
            stale_while_revalidate_sec: swr,
            stale_if_error_sec: sie,
            ..
        } = decision
        else {
            // Not to be kept: a small object is still answered from the
            // probe's bytes.
            return match probe.opened.filter(|_| whole) {
                Some(opened) => self.buffer(header, opened, probe.span).await,
                None => Learned::Pass,
            };
        };
        let Some(info) = ObjectInfo::from_head(&origin_200, fresh_until) else {
            return Learned::Pass;
        };
        let mut learned = None;
        match probe.opened {
            // Stored as it comes, before the record, so a request finding
            // the record finds the object.
            Some(opened) if whole => {
                let meta = CacheMeta::new(fresh_until, now, swr, sie, header.clone());
                learned = Some(
                    match fetch::open_fill(self.engine, &self.whole_key(), &meta).await {
                        Ok(miss) => {
                            let done = self.fill_whole(miss, opened, info.len, fresh_until);
                            Learned::Filling(Arc::new(header), info.len, done)
                        }
                        // No room: answered from memory, not kept.
                        Err(_) => self.buffer(header, opened, probe.span).await,
                    },
                );
            }
            // Slice 0's fetch, registered before the record lets any
            // request look for it.
            Some(opened) if info.len > self.slicer.config.threshold => {
                self.slicer.adopt_first(self, &info, opened);
            }
            // Neither: the ordinary path GETs the object whole.
            _ => {}
        }
        let info = self.keep_record(info, now, swr, sie).await;
        learned.unwrap_or(Learned::Object(info))
    }

    /// The whole object from `opened` into the store, on a task of its own
    /// (a client going away does not cut it short for the others); the
    /// receiver says when it ended, and whether it was stored. A failure
    /// after the commit (in the admission) cannot happen: `Some(true)`
    /// stays.
    fn fill_whole(
        &self,
        miss: MissHandler,
        opened: (HttpSession, HttpPeer),
        len: u64,
        fresh_until: SystemTime,
    ) -> watch::Receiver<Option<bool>> {
        let (tx, rx) = watch::channel(None);
        let req = self.clone();
        tokio::spawn(async move {
            let key = req.whole_key();
            let fill = fetch::Fill {
                key: &key,
                fresh_until,
                len,
                first_len: len,
            };
            // Readers are told once the object is committed, before its
            // admission removes what it evicts.
            let committed = || {
                tx.send_replace(Some(true));
            };
            let res = fetch::write_fill(req.fetch_ctx(), fill, miss, opened, None, committed);
            if let Err(e) = res.await {
                tracing::debug!(error = %e, "probe fill failed");
                tx.send_replace(Some(false));
            }
        });
        rx
    }

    /// The whole object from `opened`, read into memory.
    async fn buffer(
        &self,
        header: ResponseHeader,
        opened: (HttpSession, HttpPeer),
        len: u64,
    ) -> Learned {
        let read = fetch::read_whole(&self.slicer.connector, &self.metrics, opened, len);
        match read.await {
            Ok(body) => Learned::Whole(Arc::new(Whole { header, body })),
            Err(FetchError::TimedOut(why)) => Learned::TimedOut(why),
            Err(e) => {
                tracing::debug!(error = %e, "origin probe GET failed");
                Learned::Pass
            }
        }
    }

    /// Stores the object's record, dropping the slices of a version it
    /// replaces, and keeps it decoded.
    pub(super) async fn keep_record(
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
    pub(super) async fn learn(&self) -> Learned {
        let resp = match fetch::head(
            &self.slicer.connector,
            &self.origin,
            &self.metrics,
            (&self.path, &self.query),
            self.hops.as_ref(),
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
        if let Some(r) = refused(&resp, None) {
            return Learned::Refused(Arc::new(r));
        }
        let now = SystemTime::now();
        let Decision::Store {
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            ..
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

    pub(super) async fn drop_slices(&self, etag: &str) {
        let prefix = keys::version_prefix(&self.primary, &keys::version_tag(etag));
        self.slicer.forget_read_ahead(&prefix, &self.metrics);
        self.engine.purge_prefix(&prefix).await;
    }

    /// The object changed: drop its record and all its slices.
    pub(super) async fn forget(&self) {
        self.metrics.slices.version_changes.inc();
        self.slicer.forget_record(&self.primary);
        let family = keys::family(&self.primary);
        self.slicer.forget_read_ahead(&family, &self.metrics);
        self.engine.purge_prefix(&family).await;
    }
}
