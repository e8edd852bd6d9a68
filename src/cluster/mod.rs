//! The fleet: a PoP's nodes share their caches by consistent hashing over
//! the cache key (each object stored by one owner), and misses go up to a
//! shield tier before S3. This module holds the node's view of its PoP (the
//! ring), the signed marker and `CDN-Loop` entry every hop carries, and the
//! drain state.
//!
//! | file | concern |
//! |---|---|
//! | `settings` | the `cluster` section |
//! | `ring` | a Ketama ring with active and passive health |
//! | `marker` | the HMAC-signed hop marker |
//! | `cdn_loop` | RFC 8586 loop detection |
//! | `copies` | memory copies of hot objects forwarded to their owner |
//! | `hop` | what a request sent to another node carries |
//! | `purge` | purges sent to the other nodes |
//! | `follow` | the ring's members from the fleet's control plane |

pub mod cdn_loop;
pub mod copies;
pub mod follow;
pub mod hop;
pub mod marker;
pub mod purge;
pub mod ring;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use marker::Marker;
use ring::{Members, Ring, Timing};
use settings::ClusterConfig;

pub struct Cluster {
    pub config: ClusterConfig,
    pub marker: Marker,
    /// The PoP's ring; this node is one of its members.
    pub pop: Arc<Ring>,
    /// Set when the node is leaving: its health check answers 503 so the
    /// PoP moves its keys to the next nodes before it stops.
    draining: AtomicBool,
    /// For the purges this node sends the others.
    pub connector: pingora::connectors::http::Connector,
    /// The `CDN-Loop` entry this node appends to its hops, made once.
    pub loop_entry: String,
}

impl Cluster {
    pub fn new(config: ClusterConfig) -> Cluster {
        let members = Members::new(config.peers.iter().copied());
        let pop = Arc::new(Ring::new(
            members.clone(),
            Some(config.listen),
            config.timing(),
        ));
        Cluster {
            marker: Marker::new(&config.secret, config.marker_ttl.as_secs()),
            loop_entry: cdn_loop::entry(&config.name, Some(config.listen)),
            pop,
            config,
            draining: AtomicBool::new(false),
            connector: pingora::connectors::http::Connector::new(None),
        }
    }

    /// This node's identity on the ring: its peer listener.
    pub fn me(&self) -> SocketAddr {
        self.config.listen
    }

    /// The PoP's other members, as the ring has them now.
    pub fn others(&self) -> Vec<SocketAddr> {
        self.pop
            .members()
            .addrs()
            .into_iter()
            .filter(|a| *a != self.me())
            .collect()
    }

    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

impl ClusterConfig {
    pub fn timing(&self) -> Timing {
        Timing {
            health_check_interval: self.health_check_interval,
            down_for: self.down_for,
        }
    }
}

/// The key a ring places a request by: the canonical target (no token),
/// and for a sliced object the offset of the slice the request starts in,
/// so the slices of one video spread over the ring.
pub fn ring_key(path: &str, query: &str, slice_start: Option<u64>) -> Vec<u8> {
    let mut key = String::with_capacity(path.len() + query.len() + 24);
    key.push_str(path);
    if !query.is_empty() {
        key.push('?');
        key.push_str(query);
    }
    if let Some(start) = slice_start {
        key.push_str(" #s=");
        key.push_str(&start.to_string());
    }
    key.into_bytes()
}
