//! The `Peer` route on the hit lane: a request (HTTP/1, or an HTTP/2
//! stream) for a key another node of the PoP owns, forwarded by the lane
//! itself ([`crate::lane::forward`]) instead of through Pingora's proxy
//! phases.
//! The answer is the one Pingora's path gives, field for field: the same
//! hop request ([`crate::cluster::hop`]), the owner's answer with what
//! `response_filter` adds (the renewed token) and the CORS fields, `Date`
//! and `Connection` as Pingora's session sets them; the same counting (a
//! forward, the owner's status and time, a peer error) and log line (the
//! owner's cache status); the same copy of a hot key's answer
//! ([`crate::cluster::copies`]).
//!
//! The token is checked first, as on Pingora's path. A forward that gives
//! nothing to relay (the owner unreachable or failing before its answer,
//! which marks it down as Pingora's path does; or an answer the lane does
//! not frame) is handed on to Pingora's path with its admission
//! ([`super::handed`]): there it goes to the next node on the ring, or is
//! served here.

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use pingora::protocols::http::v1::client::http_req_header_to_wire;
use pingora_cache::CacheKey;
use pingora_http::RequestHeader;

use super::Edge;
use super::admit::{self, Target};
use super::ctx::RequestCtx;
use super::lane::{Answer, Body, Head, Outcome};
use super::peer;
use super::route::{RouteKind, unix_now};
use crate::answer;
use crate::cache::status::CacheStatus;
use crate::cluster::copies;
use crate::lane::forward::{self, Timeouts};
use crate::origin::Upstream;
use crate::refusal::Refusal;

impl Edge {
    /// The lane's answer to `req`, whose key `owner` holds: the token
    /// checked, the request forwarded, the owner's answer to relay.
    pub(super) async fn forward_answer(
        &self,
        owner: SocketAddr,
        target: Target<'_>,
        key: CacheKey,
        req: &RequestHeader,
        peer: Option<IpAddr>,
        token_in_query: bool,
    ) -> Outcome {
        let Some(engine) = self.cache else {
            return Outcome::Pass;
        };
        let mut ctx = self.lane_ctx(req, peer);
        let cors = self.lane_cors(req);
        let admitted =
            match admit::admit_target(target, req, ctx.client, &self.verifier, unix_now()).await {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    let (mut header, body) = self.lane_refusal(&mut ctx, refusal);
                    if let Some((cors, origin)) = cors {
                        cors.add_fields(&mut header, origin);
                    }
                    let (head, body) = (Head::Fields(header), Body::Bytes(body));
                    return Outcome::Answer(Answer { head, body, ctx });
                }
            };
        ctx.auth = admitted.auth;
        ctx.route = RouteKind::Peer;
        let to = Upstream::Peer(owner);
        let now = SystemTime::now();
        let hop = match self
            .origin
            .request_to(to, &admitted.path, &admitted.query, req, peer, now)
        {
            Ok(hop) => hop,
            Err(e) => return super::lane::unbuilt(&e, admitted),
        };
        // Written as Pingora's HTTP/1 client writes it (a target with a
        // byte no request line may carry is refused there too, and
        // answered).
        let Some(wire) = http_req_header_to_wire(&hop) else {
            tracing::debug!("a hop request not writable as HTTP/1; handed to the proxy");
            return Outcome::Handed(admitted);
        };
        // A copy is made of whole answers of hot keys only, as
        // `peer::forward_or_copy` decides on Pingora's path.
        let copies = copies::of(engine);
        let copy = (peer::copies_wanted(self, req)
            && req.method == http::Method::GET
            && !req.headers.contains_key(http::header::RANGE))
        .then(|| copies.wanted(&key))
        .flatten();
        // The time limits Pingora's path gives the same hop.
        let (connect, io) = self.origin.hop_timeouts();
        let timeouts = Timeouts { connect, io };
        ctx.origin.upstream = Some(to);
        ctx.origin.authorized = self.origin.passes_credentials(&hop);
        self.metrics.count_forward(to);
        ctx.origin.sent = Some(Instant::now());
        let head_only = req.method == http::Method::HEAD;
        let reply = match forward::exchange(owner, &wire, head_only, timeouts).await {
            Ok(reply) => reply,
            Err(failed) => {
                if let Some(kind) = failed.error_kind() {
                    self.origin.mark_failed(to);
                    self.metrics.count_peer_error(to, kind);
                }
                tracing::debug!(?failed, %owner, "forward handed on to the proxy path");
                return Outcome::Handed(admitted);
            }
        };
        // Known as a manifest by its type alone: Pingora's path gives it the
        // token.
        if token_in_query && crate::manifest::is_manifest_answer(&reply.header) {
            return Outcome::Handed(admitted);
        }
        let status = reply.header.status.as_u16();
        self.origin_answered(&mut ctx, status);
        ctx.copy = copy;
        peer::copy_header(self, &mut ctx, &reply.header);
        // The owner's lookup, as its answer says (`settle_cache_status`).
        let status_name = engine.config.status_header.as_deref();
        ctx.cache_status = status_name
            .and_then(|n| reply.header.headers.get(n))
            .and_then(|v| CacheStatus::of_header_value(v.as_bytes()))
            .unwrap_or(CacheStatus::None);
        let (mut header, relay) = reply.into_relay();
        let renewal = admitted.renewal.as_ref();
        if let Err(e) = answer::add_cache_fields(&mut header, None, CacheStatus::None, renewal) {
            // The owner's answer is being read: too late to hand the
            // request on.
            tracing::error!(error = %e, "the hit lane could not build a relayed answer");
            let (header, body) = self.lane_refusal(&mut ctx, Refusal::Internal);
            let (head, body) = (Head::Fields(header), Body::Bytes(body));
            return Outcome::Answer(Answer { head, body, ctx });
        }
        if let Some((cors, origin)) = cors {
            cors.add_fields(&mut header, origin);
        }
        ctx.cache_key = Some(key);
        ctx.admitted = Some(admitted);
        let head = Head::Fields(header);
        let body = Body::Relay(relay);
        Outcome::Answer(Answer { head, body, ctx })
    }

    /// What a relayed body's chunk does besides going to the client, as
    /// `upstream_response_body_filter` does on Pingora's path: the bytes
    /// counted as the upstream's, a copy filled.
    pub fn relayed(&self, ctx: &mut RequestCtx, chunk: Option<&Bytes>, end: bool) {
        if let Some(chunk) = chunk {
            ctx.origin.bytes += chunk.len() as u64;
            self.metrics.origin_bytes.inc_by(chunk.len() as u64);
        }
        peer::copy_body(self, ctx, chunk, end);
    }
}
