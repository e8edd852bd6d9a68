//! The fleet on the request path. On the client listener: which PoP member
//! owns a request (the `Peer` route forwards it there, uncached here). On
//! the peer listener: the hop marker instead of the token, and the health
//! answer the other nodes check. On both: `CDN-Loop`.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora_cache::CacheKey;

use super::Edge;
use super::admit::Admitted;
use super::ctx::RequestCtx;
use super::memory_hit;
use super::route::{Route, unix_now};
use crate::cache::engine::Engine;
use crate::cache::store::MemoryHit;
use crate::cluster::copies::{self, Capture};
use crate::cluster::purge::{self, Purge};
use crate::cluster::{Cluster, cdn_loop, marker, ring};
use crate::origin::Upstream;
use crate::refusal::Refusal;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Clients, with their tokens.
    Client,
    /// Other nodes of the fleet, with hop markers.
    Peer,
}

/// The route of a request the fleet answers before the gate: a loop, the
/// health check, a hop without a valid marker. `None`: on to the gate.
pub fn before_gate(cluster: &Cluster, listener: Listener, req: &RequestHeader) -> Option<Route> {
    if cdn_loop::is_loop(&req.headers, &cluster.config.name, cluster.me()) {
        return Some(Route::Refuse(Refusal::Loop));
    }
    if listener == Listener::Client {
        return None;
    }
    let marker = req.headers.get(marker::HEADER).map(|v| v.as_bytes());
    if marker.is_none() && req.uri.path() == ring::HEALTH_PATH && req.method == http::Method::GET {
        return Some(Route::Health);
    }
    let target = req
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    match cluster
        .marker
        .verify(marker, req.method.as_str(), target, unix_now())
    {
        Ok(()) if req.method.as_str() == purge::METHOD => Purge::of_request(req)
            .map(Route::Purge)
            .or(Some(Route::Refuse(Refusal::NotFound))),
        Ok(()) => None,
        Err(invalid) => Some(Route::Refuse(Refusal::HopForbidden(invalid))),
    }
}

/// Applies a purge another node sent, and sends it on to this node's own
/// shields: [`purge::Spread::json`], 502 when a shield could not be reached.
pub async fn serve_purge(edge: &Edge, session: &mut Session, purge: Purge) -> Result<()> {
    let purged = match edge.cache {
        Some(engine) => purge.apply(engine).await,
        None => 0,
    };
    edge.metrics.cache_purged.inc_by(purged as u64);
    let parents = edge
        .origin
        .parents
        .as_ref()
        .map(|p| p.members().addrs())
        .unwrap_or_default();
    let spread = match &edge.cluster {
        Some(cluster) if !parents.is_empty() => purge::spread(cluster, &parents, &purge).await,
        _ => purge::Spread::default(),
    };
    let status = if spread.failed.is_empty() { 200 } else { 502 };
    let body = spread.json(purged);
    let mut header = ResponseHeader::build(status, Some(3))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    crate::answer::send_whole(session, header, bytes::Bytes::from(body), false).await
}

/// The PoP member that owns an admitted client request, when it is another
/// node: the ring key is the canonical target, and for a sliced cache the
/// slice the request starts in.
pub fn owner(edge: &Edge, admitted: &Admitted, req: &RequestHeader) -> Option<SocketAddr> {
    owner_of(edge, &admitted.path, &admitted.query, req)
}

/// [`owner`] of a canonical path and query: what the hit lane asks before
/// the token is checked.
pub fn owner_of(edge: &Edge, path: &str, query: &str, req: &RequestHeader) -> Option<SocketAddr> {
    let me = edge.cluster.as_ref()?.me();
    pick_owner(edge, path, query, req, &[]).filter(|owner| *owner != me)
}

/// The PoP member that owns the request once the nodes in `skip` are left
/// out, this node included: a request whose owner failed is sent to this
/// node's own peer listener when the ring now names it, so that it is
/// stored.
pub fn next_owner(
    edge: &Edge,
    admitted: &Admitted,
    req: &RequestHeader,
    skip: &[SocketAddr],
) -> Option<SocketAddr> {
    pick_owner(edge, &admitted.path, &admitted.query, req, skip)
}

fn pick_owner(
    edge: &Edge,
    path: &str,
    query: &str,
    req: &RequestHeader,
    skip: &[SocketAddr],
) -> Option<SocketAddr> {
    let cluster = edge.cluster.as_ref()?;
    let slice_start = edge
        .cache
        .and_then(|engine| engine.config.slicing)
        .map(|slicing| first_byte(req) / slicing.size * slicing.size);
    let key = crate::cluster::ring_key(path, query, slice_start);
    if cluster.is_draining() {
        // Leaving: its keys are the next nodes' already, as the others see it.
        let mut skip = skip.to_vec();
        skip.push(cluster.me());
        return cluster.pop.pick(&key, &skip);
    }
    cluster.pop.pick(&key, skip)
}

/// A request another node owns (not a manifest to give the token): answered
/// from this node's copy of the object when it holds a fresh one, else
/// forwarded, and its answer copied when the key is hot.
pub fn forward_or_copy(
    edge: &Edge,
    engine: &'static Engine,
    req: &RequestHeader,
    key: &CacheKey,
    owner: SocketAddr,
    ctx: &mut RequestCtx,
) -> Route {
    if !copies_wanted(edge, req) {
        return Route::Peer(owner, None);
    }
    let copies = copies::of(engine);
    if let Some(hit) = copies.hit(key, SystemTime::now()) {
        return Route::MemoryHit(hit);
    }
    // A copy is made of whole answers only.
    if req.method == http::Method::GET && !req.headers.contains_key(http::header::RANGE) {
        ctx.copy = copies.wanted(key);
    }
    Route::Peer(owner, None)
}

/// Whether copies of other nodes' answers are kept and may answer `req`.
pub(super) fn copies_wanted(edge: &Edge, req: &RequestHeader) -> bool {
    let wanted = edge
        .cluster
        .as_ref()
        .is_some_and(|c| c.config.memory_copies);
    wanted && memory_hit::unconditional(req)
}

/// This node's fresh copy of another node's key, when it may answer `req`
/// ([`forward_or_copy`]'s answer from memory): what the hit lane asks.
pub fn held_copy(
    edge: &Edge,
    engine: &'static Engine,
    req: &RequestHeader,
    key: &CacheKey,
) -> Option<MemoryHit> {
    if !copies_wanted(edge, req) {
        return None;
    }
    copies::of(engine).hit(key, SystemTime::now())
}

/// The owner's answer header, for a forward whose answer is wanted as a
/// copy: whether it qualifies.
pub fn copy_header(edge: &Edge, ctx: &mut RequestCtx, resp: &ResponseHeader) {
    if ctx.copy.is_none() {
        return;
    }
    let (Some(engine), Some(Upstream::Peer(_))) = (edge.cache, ctx.origin.upstream) else {
        ctx.copy = None;
        return;
    };
    let now = SystemTime::now();
    let policy = &engine.config.policy;
    let authorized = ctx.origin.authorized;
    ctx.copy = Some(copies::of(engine).start(policy, resp, authorized, now));
}

/// A chunk of the owner's body, for a copy being filled.
pub fn copy_body(edge: &Edge, ctx: &mut RequestCtx, chunk: Option<&Bytes>, end: bool) {
    if ctx.copy.is_none() {
        return;
    }
    if let (Some(engine), Some(capture), Some(key)) = (edge.cache, &mut ctx.copy, &ctx.cache_key) {
        copies::of(engine).fill(capture, key, chunk, end);
    }
    if end || matches!(ctx.copy, Some(Capture::Wanted)) {
        ctx.copy = None;
    }
}

/// The first byte a `Range: bytes=N-...` asks for; 0 otherwise (no range,
/// a suffix range, several ranges: the owner of the start serves them).
fn first_byte(req: &RequestHeader) -> u64 {
    req.headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
        .and_then(|spec| spec.split('-').next())
        .and_then(|start| start.trim().parse().ok())
        .unwrap_or(0)
}

/// Answers the health check of the other nodes: 200, or 503 while draining
/// (they move this node's keys to the next nodes before it stops).
pub async fn serve_health(edge: &Edge, session: &mut Session) -> Result<()> {
    let draining = edge.cluster.as_ref().is_some_and(|c| c.is_draining());
    let (status, body): (u16, &[u8]) = if draining {
        (503, b"draining\n")
    } else {
        (200, b"ok\n")
    };
    let mut header = ResponseHeader::build(status, Some(3))?;
    header.insert_header("content-type", "text/plain")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    crate::answer::send_whole(session, header, bytes::Bytes::from_static(body), false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_of_a_range() {
        let cases = [
            (None, 0),
            (Some("bytes=0-99"), 0),
            (Some("bytes=1048576-"), 1_048_576),
            (Some(" bytes=5-9"), 5),
            (Some("bytes=-500"), 0),
            (Some("bytes=1-2,5-6"), 0),
            (Some("items=4-5"), 0),
            (Some("bytes=x-"), 0),
        ];
        for (range, want) in cases {
            let mut req = RequestHeader::build("GET", b"/v.mp4", None).unwrap();
            if let Some(r) = range {
                req.insert_header("range", r).unwrap();
            }
            assert_eq!(first_byte(&req), want, "{range:?}");
        }
    }
}
