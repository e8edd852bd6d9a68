//! The fleet's keys, listed then watched: a List of everything under
//! `<prefix>/<fleet>/` records the revision it saw, the Watch starts at the
//! next one, so no change falls between the two. A watch that ends, fails,
//! or is cancelled (etcd compacted the revision it would resume from) is
//! replaced by a new connection and a new List, never by a resumed watch
//! that could skip a change. While etcd is unreachable the node serves
//! with what it applied last and tries again with a growing pause.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::apply::{Applier, Change};
use super::settings::FleetConfig;
use super::status::Status;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Keys per page of a listing: some 150 bytes each, well under gRPC's
/// 4 MiB message limit.
const PAGE: i64 = 5_000;
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Why the keys are listed (again): the label of the lists metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Start,
    Error,
    Compacted,
    Canceled,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Error => "error",
            Reason::Compacted => "compacted",
            Reason::Canceled => "canceled",
        }
    }
}

pub struct RulesWatch {
    pub config: FleetConfig,
    pub applier: Applier,
    pub status: Arc<Status>,
}

impl RulesWatch {
    fn set_connected(&self, up: bool) {
        self.status.set_connected(up);
        self.applier.metrics.etcd_connected.set(i64::from(up));
    }

    fn set_watching(&self, up: bool) {
        self.status.set_watching(up);
        self.applier.metrics.watch_up.set(i64::from(up));
    }

    /// Lists everything and applies it; the client and the revision seen.
    /// The listing comes in pages of [`PAGE`] keys, all read at the
    /// revision of the first, so that a large rule set fits gRPC's message
    /// size and is still one consistent view.
    async fn list(&self, seen: i64) -> Result<(Client, i64), etcd_client::Error> {
        let mut client = super::client::connect(&self.config).await?;
        let root = self.applier.layout.root().as_bytes().to_vec();
        let end = range_end(&root);
        let mut start = root;
        let mut revision = 0;
        let mut kvs = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = client.get(start.clone(), Some(options)).await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            kvs.extend(resp.kvs().iter().map(|kv| Change {
                key: kv.key().to_vec(),
                value: kv.value().to_vec(),
                revision: kv.mod_revision(),
                deleted: false,
            }));
            match (resp.more(), resp.kvs().last()) {
                (true, Some(last)) => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        self.applier.reset(&kvs, seen).await;
        Ok((client, revision))
    }

    /// Watches from `revision + 1` until the watch ends; why it ended,
    /// and the last revision applied.
    async fn watch(
        &self,
        client: &mut Client,
        mut revision: i64,
        shutdown: &mut ShutdownWatch,
    ) -> (Option<Reason>, i64) {
        let root = self.applier.layout.root().to_string();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = match client.watch(root, Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "fleet: the watch could not start");
                return (Some(Reason::Error), revision);
            }
        };
        self.set_watching(true);
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = shutdown.changed() => return (None, revision),
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                Ok(None) => return (Some(Reason::Error), revision),
                Err(e) => {
                    tracing::warn!(error = %e, "fleet: the watch failed; listing again");
                    return (Some(Reason::Error), revision);
                }
            };
            if resp.canceled() {
                let reason = if resp.compact_revision() > 0 {
                    Reason::Compacted
                } else {
                    Reason::Canceled
                };
                tracing::warn!(
                    compact_revision = resp.compact_revision(),
                    why = resp.cancel_reason(),
                    "fleet: the watch was cancelled; listing again"
                );
                return (Some(reason), revision);
            }
            let changes: Vec<Change> = resp
                .events()
                .iter()
                .filter_map(|ev| {
                    let kv = ev.kv()?;
                    Some(Change {
                        key: kv.key().to_vec(),
                        value: kv.value().to_vec(),
                        revision: kv.mod_revision(),
                        deleted: ev.event_type() == EventType::Delete,
                    })
                })
                .collect();
            if let Some(last) = changes.iter().map(|c| c.revision).max() {
                revision = revision.max(last);
            }
            self.applier.changes(&changes).await;
        }
    }
}

#[async_trait]
impl BackgroundService for RulesWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut reason = Reason::Start;
        let mut pause = FIRST_PAUSE;
        let mut seen = 0;
        loop {
            self.applier
                .metrics
                .lists
                .with_label_values(&[reason.as_str()])
                .inc();
            match self.list(seen).await {
                Ok((mut client, revision)) => {
                    self.set_connected(true);
                    self.status.set_listed();
                    pause = FIRST_PAUSE;
                    let (ended, last) = self.watch(&mut client, revision, &mut shutdown).await;
                    seen = last;
                    self.set_watching(false);
                    match ended {
                        None => return,
                        Some(r) => reason = r,
                    }
                    if reason == Reason::Error {
                        self.set_connected(false);
                    }
                    // A compaction or cancel: list again at once.
                    if reason != Reason::Error {
                        continue;
                    }
                }
                Err(e) => {
                    self.set_connected(false);
                    reason = Reason::Error;
                    tracing::warn!(error = %e, "fleet: etcd unreachable; serving with the rules applied so far");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

/// The end of the key range of everything that starts with `prefix` (etcd's
/// convention: the prefix with its last byte below 0xff incremented).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::range_end;

    #[test]
    fn range_ends() {
        assert_eq!(range_end(b"/cdn-node/prod/"), b"/cdn-node/prod0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff"), b"\0");
    }
}
