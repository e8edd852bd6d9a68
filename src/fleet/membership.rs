//! This node as a member of its PoP: once the node is ready and has listed
//! the fleet's rules, it writes `pops/<pop>/members/<ip:port>` under a
//! lease of `fleet.lease_ttl_seconds` and keeps the lease alive. A node
//! that dies stops the keep-alives and leaves when the lease ends; a node
//! that stops gracefully revokes the lease first, so it leaves the PoP
//! before it stops serving. When etcd loses the lease (an outage longer
//! than the lease), the node joins again with a new one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use etcd_client::{Client, PutOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::layout::Layout;
use super::settings::FleetConfig;
use super::status::Status;

const RETRY_PAUSE: Duration = Duration::from_millis(500);
const READY_POLL: Duration = Duration::from_millis(100);
/// The most a graceful stop waits for etcd to drop the lease.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Membership {
    pub config: FleetConfig,
    pub layout: Layout,
    /// The address the PoP's other members reach this node at.
    pub addr: SocketAddr,
    pub status: Arc<Status>,
    /// Whether the node can serve (keys loaded, origin resolved).
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
}

/// How one registration ended.
enum Ended {
    Shutdown,
    Lost(String),
}

impl Membership {
    /// Joins, then keeps the lease alive until shutdown or a failure.
    async fn hold(&self, shutdown: &mut ShutdownWatch) -> Ended {
        let mut client = match super::client::connect(&self.config).await {
            Ok(c) => c,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let ttl = i64::try_from(self.config.lease_ttl.as_secs()).unwrap_or(10);
        let lease = match client.lease_grant(ttl, None).await {
            Ok(l) => l.id(),
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let key = self.layout.member_key(self.addr);
        let value = Layout::member_value(SystemTime::now());
        if let Err(e) = client
            .put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await
        {
            return Ended::Lost(e.to_string());
        }
        let (mut keeper, mut responses) = match client.lease_keep_alive(lease).await {
            Ok(k) => k,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        tracing::info!(addr = %self.addr, pop = %self.config.pop, "fleet: joined the PoP");
        let every = self.config.lease_ttl / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {
                    self.leave(&mut client, lease).await;
                    return Ended::Shutdown;
                }
            }
            if let Err(e) = keeper.keep_alive().await {
                return Ended::Lost(e.to_string());
            }
            match tokio::time::timeout(self.config.lease_ttl, responses.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                Ok(Ok(Some(_))) => return Ended::Lost("the lease expired".into()),
                Ok(Ok(None)) => return Ended::Lost("the keep-alive stream ended".into()),
                Ok(Err(e)) => return Ended::Lost(e.to_string()),
                Err(_) => return Ended::Lost("no keep-alive answer".into()),
            }
        }
    }

    async fn leave(&self, client: &mut Client, lease: i64) {
        match tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease)).await {
            Ok(Ok(_)) => tracing::info!(addr = %self.addr, "fleet: left the PoP"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "fleet: the membership lease was not revoked; it ends by itself")
            }
            Err(_) => {
                tracing::warn!("fleet: etcd did not answer the lease revocation; it ends by itself")
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Membership {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !((self.ready)() && self.status.listed()) {
            tokio::select! {
                _ = tokio::time::sleep(READY_POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
        loop {
            match self.hold(&mut shutdown).await {
                Ended::Shutdown => return,
                Ended::Lost(why) => {
                    tracing::warn!(error = %why, "fleet: membership lost; joining again");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
