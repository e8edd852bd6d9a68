//! Applies what the fleet's keys say to this node: purges to the cache
//! engine (what was fetched before the purge was made), revocations to the
//! verifier's denylist, the PoP's members to the set the ring reads.
//!
//! A listing replaces the state (revocations whose keys are gone are
//! dropped, members too); a watch event changes it. Purges are applied in
//! one pass over the cache index per listing or watch response.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use super::layout::{Entry, Layout, Rule};
use crate::auth::Verifier;
use crate::auth::denylist::Entries;
use crate::cache::engine::Engine;
use crate::cache::purge::TimedPurge;
use crate::metrics::fleet::FleetMetrics;

/// One key as etcd gave it: key, value (empty for a deletion), the
/// revision it was last changed at.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub revision: i64,
    pub deleted: bool,
}

pub struct Applier {
    pub layout: Layout,
    pub engine: Option<&'static Engine>,
    pub verifier: Arc<Verifier>,
    pub metrics: Arc<FleetMetrics>,
    pub members: watch::Sender<BTreeSet<SocketAddr>>,
}

/// Rules found in a batch of changes.
#[derive(Default)]
struct Batch {
    purges: Vec<TimedPurge>,
    /// Made times of rules that are new to this node, for the lag.
    fresh: Vec<SystemTime>,
}

impl Applier {
    /// Applies a full listing taken at some revision; `seen` is the
    /// revision up to which changes were applied before (0 at start):
    /// rules changed after it count into the watch lag.
    pub async fn reset(&self, kvs: &[Change], seen: i64) {
        let mut batch = Batch::default();
        let mut revoked = Entries::default();
        let mut members = BTreeSet::new();
        let mut revocations = 0;
        for c in kvs {
            match self.layout.parse(&c.key, &c.value) {
                Entry::Purge(Some(rule)) => batch.add(rule, c.revision > seen && seen > 0),
                Entry::Revocation { kind, value, rule } => {
                    if revoked.insert(kind, &value) {
                        revocations += 1;
                    }
                    if let Some(rule) = rule.filter(|_| c.revision > seen && seen > 0) {
                        batch.fresh.push(rule.made_at());
                    }
                }
                Entry::Member { pop, addr } if self.layout.is_own_pop(&pop) => {
                    members.insert(addr);
                }
                _ => {}
            }
        }
        self.verifier.replace_fleet_denied(revoked);
        self.metrics
            .rules_applied
            .with_label_values(&["revocation"])
            .inc_by(revocations);
        self.set_members(|set| {
            let changed = *set != members;
            *set = members;
            changed
        });
        self.finish(batch).await;
    }

    /// Applies the changes of one watch response.
    pub async fn changes(&self, changes: &[Change]) {
        let mut batch = Batch::default();
        for c in changes {
            match self.layout.parse(&c.key, &c.value) {
                Entry::Purge(Some(rule)) if !c.deleted => batch.add(rule, true),
                Entry::Revocation { kind, value, rule } => {
                    let revoke = !c.deleted;
                    if self.verifier.set_fleet_denied(kind, &value, revoke) {
                        let kind = if revoke {
                            "revocation"
                        } else {
                            "revocation_expired"
                        };
                        self.metrics.rules_applied.with_label_values(&[kind]).inc();
                    }
                    if let Some(rule) = rule.filter(|_| revoke) {
                        batch.fresh.push(rule.made_at());
                    }
                }
                Entry::Member { pop, addr } if self.layout.is_own_pop(&pop) => {
                    self.set_members(|set| {
                        if c.deleted {
                            set.remove(&addr)
                        } else {
                            set.insert(addr)
                        }
                    });
                }
                _ => {}
            }
        }
        self.finish(batch).await;
    }

    fn set_members(&self, change: impl FnOnce(&mut BTreeSet<SocketAddr>) -> bool) {
        self.members.send_if_modified(change);
        let n = self.members.borrow().len();
        self.metrics
            .members
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    async fn finish(&self, batch: Batch) {
        if !batch.purges.is_empty() {
            if let Some(engine) = self.engine {
                engine.purge_before(&batch.purges).await;
                crate::cluster::copies::purge_before(&batch.purges);
            }
            self.metrics
                .rules_applied
                .with_label_values(&["purge"])
                .inc_by(batch.purges.len() as u64);
        }
        let now = SystemTime::now();
        for made_at in batch.fresh {
            let lag = now.duration_since(made_at).unwrap_or_default();
            self.metrics.watch_lag.observe(lag.as_secs_f64());
        }
    }
}

impl Batch {
    fn add(&mut self, rule: Rule, fresh: bool) {
        if let Rule::Purge { scope, made_at } = rule {
            if fresh {
                self.fresh.push(made_at);
            }
            self.purges.push(TimedPurge {
                scope,
                before: made_at,
            });
        }
    }
}
