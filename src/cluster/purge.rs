//! Purges across the fleet. A purge through a node's admin API is applied
//! there, then sent to the PoP's other members and to the shields as a
//! `PURGE` on their peer listeners, signed like any hop; a node receiving
//! one applies it and sends it on to its own shields. Every node removes
//! its own copies: with slices spread over the ring, and for prefixes,
//! the copies of one object live on several nodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use super::{Cluster, cdn_loop, marker};

pub const METHOD: &str = "PURGE";
/// The request field that makes a `PURGE` remove a prefix.
pub const SCOPE_HEADER: &str = "cdn-node-purge";

/// What one purge removes: canonical forms, as the cache keys them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// One object: canonical path and query.
    One(String, String),
    /// Every object under a canonical path prefix.
    Prefix(String),
}

impl Purge {
    /// What the store removes for it.
    pub fn scope(self) -> crate::cache::purge::Scope {
        match self {
            Purge::One(path, query) => crate::cache::purge::Scope::One { path, query },
            Purge::Prefix(prefix) => crate::cache::purge::Scope::Prefix(prefix),
        }
    }

    /// Removes this node's copies, stored and forwarded ones
    /// ([`super::copies`]); how many objects went.
    pub async fn apply(&self, engine: &crate::cache::engine::Engine) -> usize {
        let stored = match self {
            Purge::One(path, query) => engine.purge_one(path, query).await,
            Purge::Prefix(prefix) => engine.purge_prefix(prefix).await,
        };
        stored + super::copies::purge(&self.clone().scope())
    }

    /// The request target of its `PURGE`.
    pub fn target(&self) -> String {
        match self {
            Purge::One(path, query) if query.is_empty() => path.clone(),
            Purge::One(path, query) => format!("{path}?{query}"),
            Purge::Prefix(prefix) => prefix.clone(),
        }
    }

    /// The purge a received `PURGE` asks for.
    pub fn of_request(req: &RequestHeader) -> Option<Purge> {
        let prefix = req
            .headers
            .get(SCOPE_HEADER)
            .is_some_and(|v| v.as_bytes() == b"prefix");
        let path = req.uri.path().to_string();
        Some(if prefix {
            Purge::Prefix(path)
        } else {
            Purge::One(path, req.uri.query().unwrap_or("").to_string())
        })
    }
}

/// What sending a purge to the other nodes came to.
#[derive(Debug, Default)]
pub struct Spread {
    pub reached: usize,
    /// The nodes that could not be reached or refused it.
    pub failed: Vec<SocketAddr>,
}

impl Spread {
    /// The answer to a purge: `{"purged":N,"nodes":N,"failed":["ip:port",...]}`
    /// with `purged` objects removed here.
    pub fn json(&self, purged: usize) -> String {
        let failed: Vec<String> = self.failed.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{{\"purged\":{purged},\"nodes\":{},\"failed\":[{}]}}\n",
            self.reached,
            failed.join(",")
        )
    }
}

async fn send(
    cluster: &Cluster,
    connector: &Connector,
    to: SocketAddr,
    purge: &Purge,
) -> Result<u16, String> {
    let target = purge.target();
    let mut req =
        RequestHeader::build(METHOD, target.as_bytes(), Some(4)).map_err(|e| e.to_string())?;
    let mark = cluster
        .marker
        .sign(METHOD, &target, marker::unix_seconds(SystemTime::now()));
    let entry = cdn_loop::entry(&cluster.config.name, Some(cluster.me()));
    req.insert_header("host", "cdn-node")
        .map_err(|e| e.to_string())?;
    req.insert_header(marker::HEADER, mark)
        .map_err(|e| e.to_string())?;
    req.insert_header(cdn_loop::HEADER, entry)
        .map_err(|e| e.to_string())?;
    req.insert_header("content-length", "0")
        .map_err(|e| e.to_string())?;
    if matches!(purge, Purge::Prefix(_)) {
        req.insert_header(SCOPE_HEADER, "prefix")
            .map_err(|e| e.to_string())?;
    }
    let mut peer = HttpPeer::new(to, false, String::new());
    peer.options.connection_timeout = Some(cluster.config.connect_timeout);
    peer.options.read_timeout = Some(Duration::from_secs(10));
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| e.to_string())?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| e.to_string())?;
    session
        .finish_request_body()
        .await
        .map_err(|e| e.to_string())?;
    session
        .read_response_header()
        .await
        .map_err(|e| e.to_string())?;
    let status = session
        .response_header()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    while let Ok(Some(_)) = session.read_response_body().await {}
    Ok(status)
}

/// Sends `purge` to every node in `to`, all at once.
pub async fn spread(cluster: &Arc<Cluster>, to: &[SocketAddr], purge: &Purge) -> Spread {
    let mut sends = tokio::task::JoinSet::new();
    for node in to {
        let (cluster, purge, node) = (cluster.clone(), purge.clone(), *node);
        sends.spawn(async move {
            let got = send(&cluster, &cluster.connector, node, &purge).await;
            (node, got)
        });
    }
    let mut spread = Spread::default();
    while let Some(Ok((node, got))) = sends.join_next().await {
        match got {
            Ok(200) => spread.reached += 1,
            Ok(status) => {
                tracing::warn!(%node, status, "a node refused a purge");
                spread.failed.push(node);
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "a purge did not reach a node");
                spread.failed.push(node);
            }
        }
    }
    spread
}
