//! The requests the HTTP/1 hit lane ([`crate::lane`]) answers without a
//! Pingora session: a fresh memory hit, whole and unconditional (the
//! `MemoryHit` route: a key this node owns, or in a PoP this node's copy of
//! another node's answer; and the `Manifest` route for a playlist held in
//! memory), a fresh disk hit the page cache holds ([`file_hit`]), in a PoP
//! a forward of another node's key to its owner ([`super::forward`]), and
//! the gate's refusal of such a request. The answer is the
//! one `request_filter` gives on Pingora's path, field for field: the same
//! route code builds it ([`memory_hit::answer`], [`manifest::answer_held`],
//! `Refusal::header`), or a thread copy's kept header is written with the
//! same edits ([`Wire`]); the CORS fields are the CORS module's, and the
//! request is counted and logged by [`Edge::finish`].
//!
//! The lane looks before it commits: the target is read, the key built and
//! memory asked without checking the token ([`admit::Target`]). Anything
//! else (nothing fresh in memory, a conditional request, a loop, a refusal
//! of the target itself) is left to Pingora's path with nothing changed
//! ([`Outcome::Pass`]), which then admits the request as it admits every
//! other. Once the lane answers, the token is checked here, and its
//! refusal is answered here too: a token must not be checked twice (a
//! replay-protected one would be refused the second time). A forward that
//! gives nothing to relay goes on to Pingora's path with the admission
//! ([`Outcome::Handed`]).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::header::{ORIGIN, RANGE};
use pingora::prelude::*;
use pingora_http::{RequestHeader, ResponseHeader};

use super::Edge;
use super::admit::{self, Admitted, Target};
use super::ctx::RequestCtx;
use super::file_hit;
use super::manifest::{self, Propagation};
use super::memory_hit;
use super::peer::{self, Listener};
use super::route::{RouteKind, unix_now};
use crate::auth::AuthOutcome;
use crate::cache::engine::Engine;
use crate::cache::key;
use crate::cache::status::CacheStatus;
use crate::cache::store::{FileBody, FileHit, Held, Source, Wire, wire};
use crate::cluster::cdn_loop;
use crate::cors::Cors;
use crate::lane::forward::Relay;
use crate::refusal::Refusal;

/// What the lane does with a request.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// It answers.
    Answer(Answer),
    /// Pingora's path serves it: nothing checked, counted or changed.
    Pass,
    /// Pingora's path serves it with the lane's admission: the token has
    /// been checked ([`super::handed`]).
    Handed(Admitted),
}

/// An answer the lane writes.
pub struct Answer {
    pub head: Head,
    pub body: Body,
    /// What the request path learnt, for [`Edge::finish`].
    pub ctx: RequestCtx,
}

/// An answer's body.
pub enum Body {
    Bytes(Bytes),
    /// A disk hit's body file, to send with `sendfile` ([`file_hit`]).
    File(FileBody),
    /// The answer of the node that owns the key, relayed as it comes
    /// ([`super::forward`]).
    Relay(Relay),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File(file) => file.len,
            Body::Relay(relay) => relay.len(),
        }
    }
}

/// The protocol an answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// By the lane's HTTP/1 connection loop, kept headers written as kept.
    Http1,
    /// On an HTTP/2 stream, through Pingora's HTTP/2 session: a header's
    /// fields only.
    Http2,
}

/// An answer's header. On the stack for one answer: boxing the header
/// would cost an allocation per answer.
#[allow(clippy::large_enum_variant)]
pub enum Head {
    /// A header to write as Pingora's HTTP/1 session would.
    Fields(ResponseHeader),
    /// A thread copy's kept HTTP/1 form ([`Wire`]) with its `Age`: a hit
    /// with nothing added to its stored header, or a playlist given the
    /// token (its length and `ETag` changed as the `Manifest` route
    /// changes them).
    Kept {
        wire: Arc<Wire>,
        status: u16,
        age: u64,
        rewritten: Option<wire::Rewritten>,
    },
}

impl Head {
    pub fn status(&self) -> u16 {
        match self {
            Head::Fields(header) => header.status.as_u16(),
            Head::Kept { status, .. } => *status,
        }
    }
}

impl Edge {
    /// Whether the lane may answer any request of this proxy: a client
    /// listener with a cache.
    pub fn lane_serves(&self) -> bool {
        self.listener == Listener::Client && self.cache.is_some()
    }

    /// The answer to `req` from a client at `peer` when memory holds the
    /// object (or, with `files`, the page cache holds its body file);
    /// [`Outcome::Pass`] (nothing checked, counted or changed) when
    /// Pingora's path serves it. What fails before the token is checked (a
    /// stored copy that cannot be read) passes it too; what fails after
    /// (an answer that cannot be built) hands it to Pingora's path with
    /// the token's admission ([`Outcome::Handed`]), so that the client is
    /// answered and its token is not checked twice. `form` is how the
    /// answer is sent: only an HTTP/1 answer may be a kept header
    /// ([`Head::Kept`]). `files`: whether the connection can be sent a
    /// file ([`Body::File`]): plain TCP, HTTP/1.
    pub async fn lane_answer(
        &self,
        req: &RequestHeader,
        peer: Option<IpAddr>,
        form: Form,
        files: bool,
    ) -> Outcome {
        // Only a lane calls this, and `Lane::of` makes one only where
        // `lane_serves`.
        let Some(engine) = self.cache else {
            return Outcome::Pass;
        };
        if !memory_hit::unconditional(req) {
            return Outcome::Pass;
        }
        let files = files && engine.config.sendfile;
        let ranged = req.headers.contains_key(RANGE);
        let Ok(target) = Target::read(req, &self.verifier, &self.origin.config) else {
            return Outcome::Pass;
        };
        // In a PoP: a loop is refused on Pingora's path.
        let owner = match &self.cluster {
            Some(cluster)
                if cdn_loop::is_loop(&req.headers, &cluster.config.name, cluster.me()) =>
            {
                return Outcome::Pass;
            }
            Some(_) => peer::owner_of(self, &target.canonical, &target.query, req),
            None => None,
        };
        let token_in_query = target.token_in_query(req, &self.verifier);
        // A manifest to give the token: the `Manifest` route's.
        let manifest = manifest::kind_of_path(&target.canonical).filter(|_| token_in_query);
        let key = key::object(&target.canonical, &target.query);
        // A `Range` is answered here from a body file, or forwarded.
        if ranged && (manifest.is_some() || (owner.is_none() && !files)) {
            return Outcome::Pass;
        }
        let source = match (ranged, files) {
            (true, _) => Source::File,
            (false, true) => Source::MemoryOrFile,
            (false, false) => Source::Memory,
        };
        let found = match (owner, manifest) {
            // Another node's key: this node's copy of it, when it holds one
            // fresh (the route `forward_or_copy` chooses); else forwarded.
            (Some(owner), None) => match peer::held_copy(self, engine, req, &key) {
                Some(hit) if !ranged => Some(hit),
                // Pingora's path cuts the range from the copy.
                Some(_) => return Outcome::Pass,
                None => {
                    return self
                        .forward_answer(owner, target, key, req, peer, token_in_query)
                        .await;
                }
            },
            (Some(_), Some(_)) => None,
            (None, Some(_)) => match manifest::held_copy(engine, &key) {
                Ok(found) => found,
                Err(e) => return unread(&e),
            },
            (None, None) => match file_hit::held(engine, &key, source) {
                Err(e) => return unread(&e),
                Ok(Some(Held::Memory(hit))) => Some(hit),
                // Known as a manifest by its type alone: Pingora's path
                // gives it the token.
                Ok(Some(Held::File(hit)))
                    if token_in_query && crate::manifest::is_manifest_answer(&hit.header) =>
                {
                    return Outcome::Pass;
                }
                Ok(Some(Held::File(hit))) => {
                    return self.file_answer(engine, hit, target, req, peer).await;
                }
                Ok(None) => None,
            },
        };
        let Some(hit) = found else {
            return Outcome::Pass;
        };
        // This node's own copy known as a manifest by its type alone:
        // Pingora's path gives it the token.
        if owner.is_none()
            && manifest.is_none()
            && token_in_query
            && crate::manifest::is_manifest_answer(&hit.header)
        {
            return Outcome::Pass;
        }
        let mut ctx = self.lane_ctx(req, peer);
        let cors = self.lane_cors(req);
        let verifier = &self.verifier;
        let (head, body) = match admit::admit_target(target, req, ctx.client, verifier, unix_now())
            .await
        {
            Ok(admitted) => {
                ctx.auth = admitted.auth;
                ctx.served_status = Some(CacheStatus::Hit);
                ctx.cache_status = CacheStatus::Hit;
                self.metrics.count_lookup(CacheStatus::Hit);
                let renewal = admitted.renewal.as_ref();
                // Nothing to add to the stored header but what a body of
                // its own changes: the copy's kept header can be written.
                let plain = form == Form::Http1 && renewal.is_none() && cors.is_none();
                let kept = hit.wire.clone().filter(|_| plain);
                let answer = match (manifest, kept) {
                    (Some(kind), kept) => {
                        ctx.route = RouteKind::Manifest;
                        // The token came in the query: it has a value
                        // to pass on.
                        let Some(propagation) = Propagation::of(req, &admitted, verifier) else {
                            tracing::error!("an admitted manifest request without its token");
                            return Outcome::Handed(admitted);
                        };
                        let metrics = &self.metrics;
                        match kept {
                            Some(wire) => {
                                let (status, age) = (hit.header.status.as_u16(), hit.age.as_secs());
                                let (body, change) =
                                    manifest::kept_answer(engine, metrics, hit, kind, &propagation);
                                let head = Head::Kept {
                                    wire,
                                    status,
                                    age,
                                    rewritten: Some(change),
                                };
                                (head, body)
                            }
                            None => {
                                let held = manifest::answer_held(
                                    engine,
                                    metrics,
                                    hit,
                                    kind,
                                    &propagation,
                                    renewal,
                                    form,
                                );
                                match held {
                                    Ok((header, body)) => (Head::Fields(header), body),
                                    Err(e) => return unbuilt(&e, admitted),
                                }
                            }
                        }
                    }
                    (None, Some(wire)) => {
                        ctx.route = RouteKind::MemoryHit;
                        memory_hit::told(engine, &hit);
                        let head = Head::Kept {
                            wire,
                            status: hit.header.status.as_u16(),
                            age: hit.age.as_secs(),
                            rewritten: None,
                        };
                        (head, hit.body)
                    }
                    (None, None) => {
                        ctx.route = RouteKind::MemoryHit;
                        match memory_hit::answer(engine, hit, renewal, form) {
                            Ok((header, body)) => (Head::Fields(header), body),
                            Err(e) => return unbuilt(&e, admitted),
                        }
                    }
                };
                ctx.admitted = Some(admitted);
                answer
            }
            Err(refusal) => {
                let (header, body) = self.lane_refusal(&mut ctx, refusal);
                (Head::Fields(header), body)
            }
        };
        let head = match (head, cors) {
            (Head::Fields(mut header), Some((cors, origin))) => {
                cors.add_fields(&mut header, origin);
                Head::Fields(header)
            }
            (head, _) => head,
        };
        let body = Body::Bytes(body);
        Outcome::Answer(Answer { head, body, ctx })
    }

    /// The answer to `req` when the page cache holds its object's body
    /// file: the token checked as for a memory hit, the request's `Range`
    /// answered from the file. A range of several parts is left to
    /// Pingora's path, which frames it.
    async fn file_answer(
        &self,
        engine: &'static Engine,
        mut hit: FileHit,
        target: Target<'_>,
        req: &RequestHeader,
        peer: Option<IpAddr>,
    ) -> Outcome {
        match file_hit::cut_to_range(engine, req, &mut hit) {
            Ok(true) => {}
            Ok(false) => return Outcome::Pass,
            Err(e) => return unread(&e),
        }
        let mut ctx = self.lane_ctx(req, peer);
        let (mut header, body) =
            match admit::admit_target(target, req, ctx.client, &self.verifier, unix_now()).await {
                Ok(admitted) => {
                    ctx.route = RouteKind::Cache;
                    ctx.served_status = Some(CacheStatus::Hit);
                    ctx.cache_status = CacheStatus::Hit;
                    self.metrics.count_lookup(CacheStatus::Hit);
                    let (header, body) =
                        match file_hit::answer(engine, hit, admitted.renewal.as_ref()) {
                            Ok(answer) => answer,
                            Err(e) => return unbuilt(&e, admitted),
                        };
                    ctx.admitted = Some(admitted);
                    // A 416 sends nothing.
                    let body = match body.len {
                        0 => Body::Bytes(Bytes::new()),
                        _ => Body::File(body),
                    };
                    (header, body)
                }
                Err(refusal) => {
                    let (header, body) = self.lane_refusal(&mut ctx, refusal);
                    (header, Body::Bytes(body))
                }
            };
        if let Some((cors, origin)) = self.lane_cors(req) {
            cors.add_fields(&mut header, origin);
        }
        let head = Head::Fields(header);
        Outcome::Answer(Answer { head, body, ctx })
    }

    /// A lane answer's context: the client's address learnt.
    pub(super) fn lane_ctx(&self, req: &RequestHeader, peer: Option<IpAddr>) -> RequestCtx {
        let mut ctx = RequestCtx::new();
        ctx.client = self.verifier.client_address(peer, &req.headers);
        ctx
    }

    /// The CORS policy and the request's `Origin`, when it is allowed.
    pub(super) fn lane_cors<'r>(
        &self,
        req: &'r RequestHeader,
    ) -> Option<(&'static Cors, &'r HeaderValue)> {
        self.cors.and_then(|cors| {
            let origin = req.headers.get(ORIGIN).filter(|o| cors.allows(o))?;
            Some((cors, origin))
        })
    }

    /// The gate's refusal, counted, as Pingora's path answers it.
    pub(super) fn lane_refusal(
        &self,
        ctx: &mut RequestCtx,
        refusal: Refusal,
    ) -> (ResponseHeader, Bytes) {
        if let Some(reject) = refusal.reject() {
            ctx.auth = AuthOutcome::Rejected(reject);
        }
        ctx.route = RouteKind::Refuse;
        self.metrics.count_refusal(refusal);
        let body = Bytes::from_static(refusal.body().as_bytes());
        (refusal.header(), body)
    }
}

/// What the lane does when a stored copy cannot be read before the token is
/// checked: Pingora's path serves the request from the start.
fn unread(e: &Error) -> Outcome {
    tracing::warn!(error = %e, "the hit lane could not read a stored copy; passed to the proxy");
    Outcome::Pass
}

/// What the lane does when an answer (or a hop request) cannot be built
/// after the token was checked: Pingora's path serves the request with the
/// token's admission.
pub(super) fn unbuilt(e: &dyn std::fmt::Display, admitted: Admitted) -> Outcome {
    tracing::error!(error = %e, "the hit lane could not build an answer or a hop request; handed to the proxy");
    Outcome::Handed(admitted)
}
