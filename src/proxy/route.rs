//! The one decision `request_filter` makes: which route serves a request,
//! and the routes that answer before Pingora's proxy phases.
//!
//! | route | served by | answered |
//! |---|---|---|
//! | `Refuse` | [`crate::answer::send_refusal`] | here: 400, 401, 403, 404, 405 |
//! | `MemoryHit` | [`super::memory_hit`] | here, from memory |
//! | `Slice` | [`crate::slice`] | here, from slices; or handed to `Cache` |
//! | `Cache` | [`super::caching`] and Pingora's cache phases | by Pingora |
//! | `Origin` | Pingora's proxy phases (no cache configured) | by Pingora |

use std::time::{SystemTime, UNIX_EPOCH};

use pingora::prelude::*;

use super::Edge;
use super::admit;
use super::caching;
use super::ctx::RequestCtx;
use super::memory_hit;
use crate::answer;
use crate::auth::AuthOutcome;
use crate::cache::status::CacheStatus;
use crate::cache::store::MemoryHit;
use crate::refusal::Refusal;
use crate::slice;

/// How a request is served. Lives on the stack for one call: the memory
/// hit it may carry is not boxed, which would cost an allocation per hit.
#[allow(clippy::large_enum_variant)]
pub enum Route {
    /// The request itself, or its token, is refused.
    Refuse(Refusal),
    /// A fresh small object held in memory.
    MemoryHit(MemoryHit),
    /// The slicer answers, or hands the request to the cache.
    Slice,
    /// Pingora's cache phases: lookup, cache lock, fill, revalidation.
    Cache,
    /// No cache configured: proxied to the origin.
    Origin,
}

/// The route a request took, kept for the later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Refuse,
    MemoryHit,
    Slice,
    Cache,
    Origin,
}

impl Route {
    pub fn kind(&self) -> RouteKind {
        match self {
            Route::Refuse(_) => RouteKind::Refuse,
            Route::MemoryHit(_) => RouteKind::MemoryHit,
            Route::Slice => RouteKind::Slice,
            Route::Cache => RouteKind::Cache,
            Route::Origin => RouteKind::Origin,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Passes the request through the gate and chooses its route. What the
/// gate learnt (the canonical request, the auth outcome, the client) and
/// the cache key go into `ctx`.
pub async fn decide(edge: &Edge, session: &Session, ctx: &mut RequestCtx) -> Result<Route> {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    ctx.client = edge.verifier.client_address(peer, &req.headers);
    let gate = admit::admit(
        req,
        ctx.client,
        &edge.verifier,
        &edge.origin.config,
        unix_now(),
    );
    let admitted = match gate.await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            if let Some(reject) = refusal.reject() {
                ctx.auth = AuthOutcome::Rejected(reject);
            }
            return Ok(Route::Refuse(refusal));
        }
    };
    ctx.auth = admitted.auth;
    ctx.cache_status = CacheStatus::Bypass;
    let route = match edge.cache {
        None => Route::Origin,
        Some(engine) => {
            // Hashed once, for every look-up this request makes.
            let key = caching::key(&admitted);
            let route = match memory_hit::find(engine, req, &key)? {
                Some(hit) => Route::MemoryHit(hit),
                None if edge.slicer.is_some() => Route::Slice,
                None => Route::Cache,
            };
            ctx.cache_key = Some(key);
            route
        }
    };
    ctx.admitted = Some(admitted);
    Ok(route)
}

/// Serves the routes answered before Pingora's proxy phases: `true` when
/// the request has been answered, `false` when Pingora goes on with it
/// (`Cache`, `Origin`).
pub async fn serve(
    edge: &Edge,
    route: Route,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    ctx.route = route.kind();
    let renewal = ctx.admitted.as_ref().and_then(|a| a.renewal.as_ref());
    match (route, edge.cache) {
        (Route::Refuse(refusal), _) => {
            edge.metrics.count_refusal(refusal);
            answer::send_refusal(session, refusal).await?;
            Ok(true)
        }
        (Route::MemoryHit(hit), Some(engine)) => {
            let sent = memory_hit::send(engine, session, hit, renewal).await;
            // A hit, also when the client went away during it.
            ctx.served_status = Some(CacheStatus::Hit);
            sent.map(|()| true)
        }
        (Route::Slice, Some(engine)) => {
            let (Some(slicer), Some(admitted), Some(key)) =
                (edge.slicer, &ctx.admitted, &ctx.cache_key)
            else {
                return Error::e_explain(ErrorType::InternalError, "slice route without a slicer");
            };
            let asked = slice::Asked {
                key,
                path: &admitted.path,
                query: &admitted.query,
                renewal,
            };
            let parts = slice::Parts {
                slicer,
                engine,
                origin: &edge.origin,
                metrics: &edge.metrics,
            };
            match slice::serve(parts, session, asked).await? {
                slice::Served::Done(status) => {
                    ctx.served_status = Some(status);
                    Ok(true)
                }
                slice::Served::Pass => {
                    ctx.route = RouteKind::Cache;
                    Ok(false)
                }
                slice::Served::Refused(refused) => {
                    ctx.origin.status = Some(refused.status);
                    ctx.origin.s3_code = refused.s3_code;
                    edge.origin_failed(ctx, refused.kind);
                    ctx.served_status = Some(CacheStatus::Miss);
                    answer::send_refusal(session, refused.refusal).await?;
                    Ok(true)
                }
            }
        }
        (Route::MemoryHit(_), None) | (Route::Slice, None) => {
            Error::e_explain(ErrorType::InternalError, "cache route without a cache")
        }
        (Route::Cache | Route::Origin, _) => Ok(false),
    }
}
