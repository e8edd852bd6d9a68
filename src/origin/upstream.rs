//! Where one request of the node goes: the direct origin, a shield, or the
//! PoP member that owns the key.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The origin itself (S3, or a plain HTTP server).
    Direct,
    /// The shield that owns the key (`origin.parents`).
    Parent(SocketAddr),
    /// The PoP member that owns the key (`cluster.peers`).
    Peer(SocketAddr),
}

impl Upstream {
    /// The node, for a hop to another node.
    pub fn node(self) -> Option<SocketAddr> {
        match self {
            Upstream::Direct => None,
            Upstream::Parent(a) | Upstream::Peer(a) => Some(a),
        }
    }

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Direct => "origin",
            Upstream::Parent(_) => "parent",
            Upstream::Peer(_) => "peer",
        }
    }
}
