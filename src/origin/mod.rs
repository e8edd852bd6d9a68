//! The S3 origin: where misses go, how the request to S3 is built and signed,
//! and what S3's answers mean for the client.

mod error;
mod passthrough;
pub mod resolve;
pub mod response;
pub mod settings;
pub mod sigv4;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::cluster::Cluster;
use crate::cluster::hop::Carried;
use crate::cluster::ring::{Members, Ring};
use crate::config::sections::OriginKind;
pub use error::OriginError;
pub use passthrough::{TokenCarriers, copy_end_to_end, strip_response};
use resolve::Resolver;
use settings::OriginConfig;
pub use upstream::Upstream;

/// Client request headers that may reach S3. Everything else (cookies, the
/// client's Authorization, hop-by-hop and `X-Forwarded-*`, `X-Original-URL`)
/// stays at the edge.
pub const FORWARDED_HEADERS: &[&str] = &[
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// Copies the [`FORWARDED_HEADERS`] of `prepared` onto `req`.
pub fn copy_forwarded(prepared: &RequestHeader, req: &mut RequestHeader) -> Result<(), String> {
    for name in FORWARDED_HEADERS {
        for value in prepared.headers.get_all(*name) {
            req.append_header(*name, value.clone())
                .map_err(|e| format!("header {name}: {e}"))?;
        }
    }
    Ok(())
}

pub struct Origin {
    pub config: OriginConfig,
    /// The direct origin's addresses; `None` when misses go to parents only.
    pub resolver: Option<Arc<Resolver>>,
    /// The shield tier's ring, when `origin.parents` are configured.
    pub parents: Option<Arc<Ring>>,
    /// The fleet, for the marker and `CDN-Loop` of hops to other nodes.
    pub cluster: Option<Arc<Cluster>>,
    /// What carries the client's token: never passed to a plain HTTP origin.
    pub token_carriers: TokenCarriers,
}

impl Origin {
    pub fn new(
        config: OriginConfig,
        cluster: Option<Arc<Cluster>>,
        token_carriers: TokenCarriers,
    ) -> Origin {
        let resolver = config.direct.then(|| {
            Arc::new(Resolver::new(
                &config.request_host(),
                config.port,
                config.resolve_interval,
            ))
        });
        let parents = match (&cluster, config.parents.is_empty()) {
            (Some(c), false) => Some(Arc::new(Ring::new(
                Members::new(config.parents.iter().copied()),
                None,
                c.config.timing(),
            ))),
            _ => None,
        };
        Origin {
            config,
            resolver,
            parents,
            cluster,
            token_carriers,
        }
    }

    /// Whether the origin's address is known (always, without a direct one).
    pub fn is_ready(&self) -> bool {
        self.resolver.as_ref().is_none_or(|r| r.is_ready())
    }

    /// Where a miss of `ring_key` goes: the shield that owns it (not one in
    /// `tried`), else the direct origin; `None` when neither is left.
    pub fn choose(&self, ring_key: &[u8], tried: &[SocketAddr]) -> Option<Upstream> {
        if let Some(parent) = self.parents.as_ref().and_then(|p| p.pick(ring_key, tried)) {
            return Some(Upstream::Parent(parent));
        }
        self.config.direct.then_some(Upstream::Direct)
    }

    /// A peer for the next request to the direct origin, or `None` while no
    /// address is known.
    pub fn peer(&self) -> Option<HttpPeer> {
        let addr = self.resolver.as_ref()?.pick()?;
        let mut peer = HttpPeer::new(addr, self.config.tls, self.config.request_host());
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.read_timeout = Some(self.config.read_timeout);
        peer.options.write_timeout = Some(self.config.read_timeout);
        Some(peer)
    }

    /// The connection settings for `to`.
    pub fn peer_of(&self, to: Upstream) -> Option<HttpPeer> {
        match to {
            Upstream::Direct => self.peer(),
            Upstream::Parent(addr) | Upstream::Peer(addr) => {
                let (connect, io) = self.hop_timeouts();
                let mut peer = HttpPeer::new(addr, false, String::new());
                peer.options.connection_timeout = Some(connect);
                peer.options.read_timeout = Some(io);
                peer.options.write_timeout = Some(io);
                Some(peer)
            }
        }
    }

    /// A hop to another node's limits: (connect, each read and write).
    pub fn hop_timeouts(&self) -> (Duration, Duration) {
        let connect = self
            .cluster
            .as_ref()
            .map_or(Duration::from_millis(500), |c| c.config.connect_timeout);
        (connect, self.config.read_timeout)
    }

    /// The request for `to`: signed for S3, passed through for a plain HTTP
    /// origin, marked for another node. `client`: the address this node
    /// was asked from (`X-Forwarded-For` before a plain origin), `None` for
    /// a fetch made for every client alike.
    pub fn request_to(
        &self,
        to: Upstream,
        canonical_path: &str,
        canonical_query: &str,
        prepared: &RequestHeader,
        client: Option<IpAddr>,
        now: SystemTime,
    ) -> Result<RequestHeader, String> {
        match to {
            Upstream::Parent(_) | Upstream::Peer(_) => {
                let Some(cluster) = &self.cluster else {
                    return Err("a hop to another node without a cluster section".into());
                };
                let to_self = to == Upstream::Peer(cluster.me());
                let (path, query) = (canonical_path, canonical_query);
                let carried = match self.config.kind {
                    OriginKind::Http => Carried::EndToEnd {
                        carriers: &self.token_carriers,
                        client,
                    },
                    OriginKind::S3 => Carried::CacheFields,
                };
                crate::cluster::hop::request(cluster, to_self, carried, path, query, prepared, now)
            }
            Upstream::Direct if self.config.kind == OriginKind::Http => passthrough::request(
                &self.config,
                &self.token_carriers,
                canonical_path,
                canonical_query,
                prepared,
                client,
            ),
            Upstream::Direct => self.request(canonical_path, canonical_query, prepared, now),
        }
    }

    /// Whether `sent`, a request this node built for a miss, carries the
    /// client's own `Authorization` (passed on before a plain HTTP origin,
    /// to it or on a hop; a request to S3 carries the node's signature
    /// there instead): then a shared cache stores the answer only when the
    /// origin says it may (RFC 9111 3.5).
    pub fn passes_credentials(&self, sent: &RequestHeader) -> bool {
        self.config.kind == OriginKind::Http
            && sent.headers.contains_key(http::header::AUTHORIZATION)
    }

    /// A connection to a node failed: pass it over for a while.
    pub fn mark_failed(&self, to: Upstream) {
        match (to, &self.parents, &self.cluster) {
            (Upstream::Parent(addr), Some(parents), _) => parents.mark_failed(addr),
            (Upstream::Peer(addr), _, Some(cluster)) => cluster.pop.mark_failed(addr),
            _ => {}
        }
    }

    /// Builds the whole request to S3 for a canonical path and query: a fresh
    /// header, not an edited copy of `prepared` (the request as Pingora would
    /// send it), so nothing the client sent leaks through unless listed in
    /// [`FORWARDED_HEADERS`].
    pub fn request(
        &self,
        canonical_path: &str,
        canonical_query: &str,
        prepared: &RequestHeader,
        now: SystemTime,
    ) -> Result<RequestHeader, String> {
        // Pingora turns a HEAD miss into a GET when it will cache the
        // answer: follow the method it prepared.
        let method = if prepared.method == http::Method::HEAD {
            "HEAD"
        } else {
            "GET"
        };
        let uri = self.config.object_uri(canonical_path);
        let target = if canonical_query.is_empty() {
            uri.clone()
        } else {
            format!("{uri}?{canonical_query}")
        };
        let mut req = RequestHeader::build(method, target.as_bytes(), Some(12))
            .map_err(|e| format!("origin request: {e}"))?;
        let host = self.config.host_header();
        req.insert_header("host", &host)
            .map_err(|e| format!("origin host header: {e}"))?;
        copy_forwarded(prepared, &mut req)?;
        if let Some(creds) = &self.config.credentials {
            let signed = sigv4::sign(
                method,
                &host,
                &uri,
                canonical_query,
                &self.config.region,
                creds,
                now,
            )
            .map_err(|e| format!("signing: {e}"))?;
            for (name, value) in signed {
                req.insert_header(name, value)
                    .map_err(|e| format!("signature header: {e}"))?;
            }
        }
        Ok(req)
    }
}
