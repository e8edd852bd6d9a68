//! The one decision `request_filter` makes: which route serves a request,
//! and the routes that answer before Pingora's proxy phases.
//!
//! | route | served by | answered |
//! |---|---|---|
//! | `Preflight` | [`crate::cors::preflight`] | here: 204, or 403 refused |
//! | `Refuse` | [`crate::answer::send_refusal`] | here: 400, 401, 403, 404, 405 |
//! | `Manifest` | [`super::manifest`] | here, rewritten from the store; or by `Cache` |
//! | `MemoryHit` | [`super::memory_hit`] | here, from memory (the store's, or a copy of a forwarded answer) |
//! | `Slice` | [`crate::slice`] | here, from slices; or handed to `Cache` |
//! | `Cache` | [`super::caching`] and Pingora's cache phases | by Pingora |
//! | `Origin` | Pingora's proxy phases (no cache configured) | by Pingora |
//! | `Pass` | Pingora's proxy phases, to the origin, uncached; an unsafe method's answer invalidates ([`super::invalidate`]) | by Pingora |
//! | `Peer` | Pingora's proxy phases, to the PoP member owning the key, uncached (the hit lane forwards it itself: [`super::forward`]) | by Pingora |
//! | `Health` | [`super::peer`]: the peer listener's health check | here: 200, or 503 draining |
//! | `Purge` | [`super::peer`]: a purge another node sent | here: 200, or 502 |

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use pingora::prelude::*;

use super::Edge;
use super::admit;
use super::caching;
use super::ctx::RequestCtx;
use super::handed;
use super::manifest::{self, Pending, Propagation};
use super::memory_hit;
use super::peer::{self, Listener};
use crate::answer;
use crate::auth::AuthOutcome;
use crate::cache::status::CacheStatus;
use crate::cache::store::MemoryHit;
use crate::cors::preflight;
use crate::manifest::Kind;
use crate::refusal::Refusal;
use crate::request::method::MethodSet;
use crate::slice;

/// How a request is served. Lives on the stack for one call: the memory
/// hit it may carry is not boxed, which would cost an allocation per hit.
#[allow(clippy::large_enum_variant)]
pub enum Route {
    /// A CORS preflight, answered without a token.
    Preflight,
    /// The request itself, or its token, is refused.
    Refuse(Refusal),
    /// An HLS or DASH manifest whose URIs get the request's token.
    Manifest(Kind, Propagation),
    /// A fresh small object held in memory: the store's, or this node's
    /// copy of an object another node owns.
    MemoryHit(MemoryHit),
    /// The slicer answers, or hands the request to the cache.
    Slice,
    /// Pingora's cache phases: lookup, cache lock, fill, revalidation.
    Cache,
    /// No cache configured: proxied to the origin.
    Origin,
    /// Another method than GET or HEAD (`origin.methods`): proxied to the
    /// origin itself, never stored.
    Pass,
    /// Another node of the PoP owns the key: proxied there, not stored here.
    Peer(SocketAddr, Option<Propagation>),
    /// The health check of the other nodes, on the peer listener.
    Health,
    /// A purge another node sent, on the peer listener.
    Purge(crate::cluster::purge::Purge),
}

/// The route a request took, kept for the later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Preflight,
    Refuse,
    Manifest,
    MemoryHit,
    Slice,
    Cache,
    Origin,
    Pass,
    Peer,
    Health,
    Purge,
}

impl Route {
    pub fn kind(&self) -> RouteKind {
        match self {
            Route::Preflight => RouteKind::Preflight,
            Route::Refuse(_) => RouteKind::Refuse,
            Route::Manifest(..) => RouteKind::Manifest,
            Route::MemoryHit(_) => RouteKind::MemoryHit,
            Route::Slice => RouteKind::Slice,
            Route::Cache => RouteKind::Cache,
            Route::Origin => RouteKind::Origin,
            Route::Pass => RouteKind::Pass,
            Route::Peer(..) => RouteKind::Peer,
            Route::Health => RouteKind::Health,
            Route::Purge(_) => RouteKind::Purge,
        }
    }
}

pub(super) fn unix_now() -> u64 {
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
    if let Some(cluster) = &edge.cluster
        && let Some(route) = peer::before_gate(cluster, edge.listener, req)
    {
        return Ok(route);
    }
    if edge.cors.is_some() && preflight::is_preflight(req) {
        return Ok(Route::Preflight);
    }
    let peer = super::peer_ip(session);
    ctx.client = edge.verifier.client_address(peer, &req.headers);
    let gate = async {
        match edge.listener {
            Listener::Client => match handed::take() {
                // The hit lane admitted it and handed it on: not checked
                // twice.
                Some(admitted) => Ok(admitted),
                None => {
                    let origin = &edge.origin.config;
                    admit::admit(req, ctx.client, &edge.verifier, origin, unix_now()).await
                }
            },
            Listener::Peer => admit::admit_hop(req, &edge.origin.config),
        }
    };
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
    if !MethodSet::READ.contains(req.method.as_str()) {
        // A method the gate let through for the origin: sent there from
        // here (hops and shields carry GET and HEAD only).
        if !edge.origin.config.direct {
            return Ok(Route::Refuse(Refusal::MethodNotAllowed(MethodSet::READ)));
        }
        ctx.admitted = Some(admitted);
        return Ok(Route::Pass);
    }
    let route = match edge.cache {
        None => Route::Origin,
        Some(engine) => {
            // Hashed once, for every look-up this request makes.
            let key = caching::key(&admitted);
            let manifest = manifest::kind_of_path(&admitted.path)
                .filter(|_| admitted.token_query.is_some())
                .and_then(|kind| Some((kind, Propagation::of(req, &admitted, &edge.verifier)?)));
            let owner = match edge.listener {
                Listener::Client => peer::owner(edge, &admitted, req),
                Listener::Peer => None,
            };
            let route = match (owner, manifest) {
                (Some(owner), None) => peer::forward_or_copy(edge, engine, req, &key, owner, ctx),
                (Some(owner), Some((_, p))) => Route::Peer(owner, Some(p)),
                (None, manifest) => match manifest {
                    Some((kind, propagation)) => Route::Manifest(kind, propagation),
                    None => match memory_hit::find(engine, req, &key)? {
                        // Known as a manifest by its type alone: Pingora's path
                        // gives it the token.
                        Some(hit)
                            if admitted.token_query.is_some()
                                && crate::manifest::is_manifest_answer(&hit.header) =>
                        {
                            Route::Cache
                        }
                        Some(hit) => Route::MemoryHit(hit),
                        None if edge.slicer.is_some() => Route::Slice,
                        None => Route::Cache,
                    },
                },
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
        (Route::Preflight, _) => {
            serve_preflight(edge, session).await?;
            Ok(true)
        }
        (Route::Refuse(refusal), _) => {
            edge.metrics.count_refusal(refusal);
            answer::send_refusal(session, refusal).await?;
            Ok(true)
        }
        (Route::Manifest(kind, propagation), Some(engine)) => {
            let Some(key) = &ctx.cache_key else {
                return Error::e_explain(ErrorType::InternalError, "manifest route without a key");
            };
            let served = manifest::serve_stored(
                engine,
                &edge.metrics,
                session,
                key,
                kind,
                &propagation,
                renewal,
            )
            .await?;
            if served {
                ctx.served_status = Some(CacheStatus::Hit);
            } else {
                ctx.route = RouteKind::Cache;
                ctx.manifest = Some(Pending::Expected(propagation));
            }
            Ok(served)
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
                manifest_token: admitted.token_query.is_some(),
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
        (Route::Peer(owner, propagation), _) => {
            ctx.origin.upstream = Some(crate::origin::Upstream::Peer(owner));
            ctx.manifest = propagation.map(Pending::Expected);
            Ok(false)
        }
        (Route::Health, _) => {
            peer::serve_health(edge, session).await?;
            Ok(true)
        }
        (Route::Purge(purge), _) => {
            peer::serve_purge(edge, session, purge).await?;
            Ok(true)
        }
        (Route::MemoryHit(_) | Route::Slice | Route::Manifest(..), None) => {
            Error::e_explain(ErrorType::InternalError, "cache route without a cache")
        }
        (Route::Cache | Route::Origin, _) => Ok(false),
        (Route::Pass, _) => {
            ctx.origin.upstream = Some(crate::origin::Upstream::Direct);
            Ok(false)
        }
    }
}

/// Answers a CORS preflight: 204 with the CORS fields, or 403 without them.
async fn serve_preflight(edge: &Edge, session: &mut Session) -> Result<()> {
    let Some(cors) = edge.cors else {
        return Error::e_explain(ErrorType::InternalError, "preflight route without CORS");
    };
    let counted = &edge.metrics.playback.cors_preflights;
    match cors.preflight(session.req_header(), edge.origin.config.allowed()) {
        Ok(header) => {
            counted.with_label_values(&["answered"]).inc();
            session
                .write_response_header(Box::new(header), true)
                .await
                .map_err(|e| e.into_down())
        }
        Err(refused) => {
            counted.with_label_values(&[refused.as_str()]).inc();
            answer::send_refusal(session, Refusal::PreflightRefused).await
        }
    }
}
