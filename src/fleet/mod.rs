//! The fleet's control plane on etcd (`fleet` section): purges and token
//! revocations written once reach every node, a node that was away
//! catches up, and each PoP knows its live members.
//!
//! - [`watch`]: every node lists the fleet's keys, then watches them from
//!   the listed revision; [`apply`] turns them into cache purges, denylist
//!   entries and the PoP's member set.
//! - [`membership`]: the node's own member key, under a kept-alive lease.
//! - [`writer`]: the admin API and the `purge` / `revoke` commands write
//!   rules; [`layout`] is the key layout (docs/fleet.md).
//!
//! A node without a `fleet` section builds none of this and never connects
//! to etcd.

pub mod admin;
pub mod apply;
mod client;
pub mod command;
pub mod layout;
pub mod membership;
pub mod settings;
pub mod status;
pub mod watch;
pub mod writer;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch as tokio_watch;

use crate::auth::Verifier;
use crate::cache::engine::Engine;
use crate::metrics::Metrics;
use layout::Layout;
use settings::FleetConfig;
use status::Status;

/// The PoP's members as the ring wants them.
pub type Members = tokio_watch::Receiver<BTreeSet<SocketAddr>>;

/// The node's handle on the control plane.
pub struct Fleet {
    config: FleetConfig,
    layout: Layout,
    status: Arc<Status>,
    members: Members,
    writer: Arc<writer::Writer>,
}

impl Fleet {
    /// The handle and the rules' watch, which the caller runs as a
    /// background service.
    pub fn new(
        config: FleetConfig,
        metrics: &Metrics,
        engine: Option<&'static Engine>,
        verifier: Arc<Verifier>,
    ) -> (Fleet, watch::RulesWatch) {
        let layout = Layout::new(&config.prefix, &config.name, &config.pop);
        let status = Arc::new(Status::default());
        let (members_tx, members) = tokio_watch::channel(BTreeSet::new());
        let rules = watch::RulesWatch {
            config: config.clone(),
            applier: apply::Applier {
                layout: layout.clone(),
                engine,
                verifier,
                metrics: Arc::new(metrics.register_fleet()),
                members: members_tx,
            },
            status: status.clone(),
        };
        let fleet = Fleet {
            writer: Arc::new(writer::Writer::new(config.clone())),
            config,
            layout,
            status,
            members,
        };
        (fleet, rules)
    }

    /// The live members of this node's PoP (this node included once it
    /// joined); a member whose lease ended is removed.
    pub fn members(&self) -> Members {
        self.members.clone()
    }

    /// Writes rules for the admin API.
    pub fn writer(&self) -> Arc<writer::Writer> {
        self.writer.clone()
    }

    /// Whether the rules were listed and applied once since the start.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// The service that registers this node at `addr` once `ready` holds
    /// and the rules are listed, and leaves on a graceful stop.
    pub fn membership(
        &self,
        addr: SocketAddr,
        ready: Box<dyn Fn() -> bool + Send + Sync>,
    ) -> membership::Membership {
        membership::Membership {
            config: self.config.clone(),
            layout: self.layout.clone(),
            addr,
            status: self.status.clone(),
            ready,
        }
    }
}
