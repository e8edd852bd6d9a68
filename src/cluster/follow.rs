//! The PoP's ring follows the members the fleet's control plane lists:
//! each change replaces the ring's member set (read at the ring's next
//! refresh). While the control plane is away the last set stays.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use super::ring::Members;

pub struct Follow {
    pub from: watch::Receiver<BTreeSet<SocketAddr>>,
    pub members: Members,
}

#[async_trait]
impl BackgroundService for Follow {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut from = self.from.clone();
        loop {
            let set = from.borrow_and_update().clone();
            // An empty list is a control plane not listed yet, never a PoP
            // of no node: the configured members stay.
            if !set.is_empty() {
                self.members.set(set);
            }
            tokio::select! {
                changed = from.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}
