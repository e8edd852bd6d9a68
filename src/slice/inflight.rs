//! One fetch per slice: the first request for a missing slice starts its
//! fetch on a task of its own, later ones join it and read the fill as it
//! is written.

use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::CacheKey;
use tokio::sync::{mpsc, watch};

use super::fetch::{self, Chunks, FetchError, Split};
use super::info::ObjectInfo;
use super::{Request, Slicer, key_text, lock};
use crate::cache::key::slice as keys;
use crate::metrics::Collapsed;

#[derive(Debug, Clone)]
pub(super) enum FetchState {
    Pending,
    /// The fill is in the store: read it there.
    Started,
    Failed(FetchError),
}

/// Where a slice fetch gets its bytes.
enum Source {
    /// Range GETs of its own, split at the offset when given.
    Origin(Option<Split>),
    /// An origin answer already open and checked to hold exactly the slice.
    Opened(Box<(HttpSession, HttpPeer)>),
}

/// Who fetches a slice.
enum Claim {
    /// A fetch under way (`under_way`), or the slice already stored:
    /// follow this.
    Joined {
        rx: watch::Receiver<FetchState>,
        under_way: bool,
    },
    /// Nobody: the caller runs the fetch, announcing through `tx`.
    Mine {
        tx: watch::Sender<FetchState>,
        rx: watch::Receiver<FetchState>,
        text: String,
    },
}

impl Slicer {
    /// The fetch of slice `n`: joins one under way, or spawns it (split at
    /// `split` when given: then the second part's bytes come back too).
    /// The fetch runs on its own task, so a client going away never cuts a
    /// fill short.
    pub(super) fn start(
        &'static self,
        req: &Request,
        info: &ObjectInfo,
        key: CacheKey,
        n: u64,
        trigger: &'static str,
        split: Option<u64>,
    ) -> (watch::Receiver<FetchState>, Option<Chunks>) {
        let (tx, rx, text) = match self.claim(req, &key) {
            Claim::Joined { rx, under_way } => {
                if under_way && trigger == "request" {
                    req.metrics.count_collapsed(Collapsed::Slice);
                }
                return (rx, None);
            }
            Claim::Mine { tx, rx, text } => (tx, rx, text),
        };
        let (split, chunks) = match split {
            Some(at) => {
                let (client, chunks) = mpsc::unbounded_channel();
                (Some(Split { at, client }), Some(chunks))
            }
            None => (None, None),
        };
        let job = req.job(info, key, n);
        self.run(req, job, (tx, text), trigger, Source::Origin(split));
        (rx, chunks)
    }

    /// Slice 0 from `opened`, the answer of the probe that learnt the
    /// object, checked to be exactly that slice of the recorded version:
    /// stored as a slice fetch would store it, unless a fetch of it is
    /// under way or it is stored already (then the answer is dropped).
    pub(super) fn adopt_first(
        &'static self,
        req: &Request,
        info: &ObjectInfo,
        opened: (HttpSession, HttpPeer),
    ) {
        let prefix = keys::slice_prefix(&req.primary, &keys::version_tag(&info.etag));
        let key = keys::slice_at(&prefix, 0);
        if let Claim::Mine { tx, text, .. } = self.claim(req, &key) {
            let job = req.job(info, key, 0);
            let source = Source::Opened(Box::new(opened));
            self.run(req, job, (tx, text), "request", source);
        }
    }

    fn claim(&self, req: &Request, key: &CacheKey) -> Claim {
        let text = key_text(key).to_string();
        let mut inflight = lock(&self.inflight);
        if let Some(rx) = inflight.get(&text) {
            return Claim::Joined {
                rx: rx.clone(),
                under_way: true,
            };
        }
        let (tx, rx) = watch::channel(FetchState::Pending);
        // Under the map lock: a fetch that finished between the caller's
        // lookup and now left its slice in the store.
        if req.engine.store.contains(key) {
            let _ = tx.send(FetchState::Started);
            return Claim::Joined {
                rx,
                under_way: false,
            };
        }
        inflight.insert(text.clone(), rx.clone());
        Claim::Mine { tx, rx, text }
    }

    /// Runs a claimed fetch on its own task.
    fn run(
        &'static self,
        req: &Request,
        job: fetch::SliceJob,
        (tx, text): (watch::Sender<FetchState>, String),
        trigger: &'static str,
        source: Source,
    ) {
        let req = req.clone();
        tokio::spawn(async move {
            let metrics = &req.metrics;
            metrics.slices.fetches_in_progress.inc();
            let announce = || {
                let _ = tx.send(FetchState::Started);
                lock(&self.inflight).remove(&text);
            };
            let res = match source {
                Source::Origin(split) => {
                    fetch::fetch_slice(req.fetch_ctx(), &job, split, announce).await
                }
                Source::Opened(opened) => {
                    fetch::fill_slice(req.fetch_ctx(), &job, *opened, job.end, None, announce).await
                }
            };
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
    }
}
