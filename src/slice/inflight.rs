//! One fetch per slice: the first request for a missing slice starts its
//! fetch on a task of its own, later ones join it and read the fill as it
//! is written.

use pingora_cache::CacheKey;
use tokio::sync::{mpsc, watch};

use super::fetch::{self, Chunks, FetchError, Split};
use super::info::ObjectInfo;
use super::{Request, Slicer, key_text, lock};

#[derive(Debug, Clone)]
pub(super) enum FetchState {
    Pending,
    /// The fill is in the store: read it there.
    Started,
    Failed(FetchError),
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
}
