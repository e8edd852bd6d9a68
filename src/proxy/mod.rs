//! The request path: Pingora's `ProxyHttp` phases. `request_filter` chooses
//! a route once ([`route`]); every phase is a few lines handing its work to
//! the module that owns the concern (gate, routes, cache, origin, refusal,
//! metrics, access log).

pub mod admit;
mod caching;
pub mod ctx;
mod file_hit;
mod forward;
pub mod handed;
mod invalidate;
pub mod lane;
mod manifest;
mod memory_hit;
pub mod peer;
pub mod route;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;
use pingora_proxy::{FailToProxy, RangeType};

use pingora_cache::storage::HitHandler;
use pingora_cache::{
    CacheKey, CacheMeta, CachePhase, ForcedFreshness, NoCacheReason, RespCacheable,
};

use crate::access_log::{AccessLog, Finished};
use crate::answer;
use crate::auth::{Verifier, redact_query};
use crate::cache::engine::Engine;
use crate::cache::status::CacheStatus;
use crate::cluster::Cluster;
use crate::cors::Cors;
use crate::cors::module::CorsModule;
use crate::metrics::{Metrics, status_class};
use crate::origin::response::{self, ErrorBody, Verdict};
use crate::origin::{Origin, OriginError, Upstream};
use crate::refusal::Refusal;
use crate::slice::Slicer;
use ctx::RequestCtx;
use peer::Listener;
use route::RouteKind;

#[derive(Clone)]
pub struct Edge {
    pub verifier: Arc<Verifier>,
    pub origin: Arc<Origin>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// `None` when no cache is configured.
    pub cache: Option<&'static Engine>,
    /// `None` when large objects are not sliced (or no cache is configured).
    pub slicer: Option<&'static Slicer>,
    /// `None` when no origin may read answers cross-origin.
    pub cors: Option<&'static Cors>,
    /// `None` for a node outside any fleet.
    pub cluster: Option<Arc<Cluster>>,
    /// The listener this proxy serves: clients, or the fleet's other nodes.
    pub listener: Listener,
}

impl Edge {
    /// The request target with every token value replaced: the only form
    /// in which a target reaches a log line.
    fn redacted_target(&self, req: &RequestHeader) -> String {
        let raw = String::from_utf8_lossy(req.raw_path());
        match raw.split_once('?') {
            Some((path, query)) => format!(
                "{path}?{}",
                redact_query(self.verifier.token_sources(), query)
            ),
            None => raw.into_owned(),
        }
    }

    fn origin_failed(&self, ctx: &mut RequestCtx, kind: OriginError) {
        ctx.origin.error = Some(kind);
        self.metrics.count_origin_error(kind);
    }

    /// An answer from the origin arrived: its status and time.
    fn origin_answered(&self, ctx: &mut RequestCtx, status: u16) {
        ctx.origin.status = Some(status);
        let direct = matches!(ctx.origin.upstream, None | Some(Upstream::Direct));
        if let Some(sent) = ctx.origin.sent {
            let took = sent.elapsed();
            ctx.origin.duration = Some(took);
            if direct {
                self.metrics.origin_duration.observe(took.as_secs_f64());
            }
        }
        if !direct {
            return;
        }
        self.metrics
            .origin_requests
            .with_label_values(&[status_class(status)])
            .inc();
    }

    /// Whether an answer on Pingora's path is a manifest to give the token
    /// (see [`manifest`]).
    fn manifest_answer(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> bool {
        let Some(engine) = self.cache else {
            return false;
        };
        let limit = engine.config.manifest_max_size;
        let req = session.req_header();
        manifest::on_header(ctx, &self.verifier, req, resp, limit, &self.metrics)
    }

    /// Where a miss goes: the shield owning the key, else the origin.
    fn choose_upstream(&self, _session: &Session, ctx: &RequestCtx) -> Option<Upstream> {
        let admitted = ctx.admitted.as_ref()?;
        let key = crate::cluster::ring_key(&admitted.path, &admitted.query, None);
        self.origin.choose(&key, &ctx.origin.tried)
    }

    /// Where the request goes after `failed` could not be reached: the next
    /// PoP member for a forwarded request, the next shield for a miss, and
    /// the origin when no node is left.
    fn next_upstream(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        failed: Upstream,
    ) -> Option<Upstream> {
        if let (Upstream::Peer(_), Some(admitted)) = (failed, &ctx.admitted) {
            let req = session.req_header();
            if let Some(next) = peer::next_owner(self, admitted, req, &ctx.origin.tried) {
                return Some(Upstream::Peer(next));
            }
        }
        self.choose_upstream(session, ctx)
    }

    /// Whether the answers come from S3 itself (mapped and cleaned here).
    fn origin_speaks_s3(&self, ctx: &RequestCtx) -> bool {
        matches!(ctx.origin.upstream, None | Some(Upstream::Direct))
            && self.origin.config.kind == crate::config::sections::OriginKind::S3
    }

    /// The request's cache status once it is over, counted as a lookup when
    /// the cache took part.
    fn settle_cache_status(&self, session: &Session, ctx: &mut RequestCtx) {
        if self.cache.is_none() || ctx.admitted.is_none() {
            return;
        }
        if ctx.route == RouteKind::Peer {
            // The owner's lookup, as its answer said.
            let name = self.cache.and_then(|e| e.config.status_header.as_deref());
            ctx.cache_status = name
                .and_then(|n| session.response_written()?.headers.get(n))
                .and_then(|v| CacheStatus::of_header_value(v.as_bytes()))
                .unwrap_or(CacheStatus::None);
            return;
        }
        ctx.cache_status = ctx
            .served_status
            .unwrap_or_else(|| cache_status(session, ctx));
        self.metrics.count_lookup(ctx.cache_status);
        if let Some(waited) = session.cache.lock_duration() {
            self.metrics.cache_fill_wait.observe(waited.as_secs_f64());
        }
    }
}

/// The address the session's request came from (the socket's peer, or
/// the one a PROXY header gave).
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The `kind` label of a failed hop to another node: `timeout`, else `other`.
fn peer_error_kind(e: &Error, other: &'static str) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            "timeout"
        }
        _ => other,
    }
}

/// The cache status of a request going through Pingora's cache phases. An
/// expired copy whose refetch failed (not served stale) is `expired`: the
/// phase alone says the cache was disabled.
fn cache_status(session: &Session, ctx: &RequestCtx) -> CacheStatus {
    match session.cache.phase() {
        CachePhase::Disabled(_) if ctx.cache_expired && !ctx.cache_missed => CacheStatus::Expired,
        phase => CacheStatus::of_phase(&phase, ctx.cache_missed),
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Only CORS, when configured. Pingora's default is its response
    /// compression at level 0 (off): a context built and two filters awaited
    /// on every request, for bodies (video) the node never compresses.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if let Some(cors) = self.cors {
            modules.add_module(Box::new(CorsModule(cors)));
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let route = route::decide(self, session, ctx).await?;
        route::serve(self, route, session, ctx).await
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if let (Some(engine), RouteKind::Cache) = (self.cache, ctx.route) {
            caching::enable(session, engine);
        }
        Ok(())
    }

    fn cache_miss(&self, session: &mut Session, ctx: &mut RequestCtx) {
        ctx.cache_missed = true;
        session.cache.cache_miss();
    }

    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        _meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        ctx.cache_expired = !is_fresh;
        Ok(None)
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        if let Some(key) = ctx.cache_key.take() {
            return Ok(key);
        }
        match &ctx.admitted {
            Some(admitted) => Ok(caching::key(admitted)),
            None => Error::e_explain(
                ErrorType::InternalError,
                "cache key of an unadmitted request",
            ),
        }
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let Some(engine) = self.cache else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        // A revalidation's 304: Pingora merged a few of its fields into the
        // stored header; every field it sends updates the stored answer.
        let updated = ctx.origin.not_modified.take().and_then(|not_modified| {
            let stored = session.cache.maybe_cache_meta()?.response_header();
            Some(caching::updated(stored, &not_modified))
        });
        let resp = updated.as_ref().unwrap_or(resp);
        Ok(caching::cacheable(engine, resp, ctx.origin.authorized))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<pingora_cache::key::HashBinary> {
        caching::variance(meta.headers(), req)
    }

    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> RangeType {
        // A manifest's range is taken from its rewritten body, not this one.
        if self.manifest_answer(session, resp, ctx) {
            return RangeType::None;
        }
        crate::range::apply(session.req_header(), resp)
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        let serve = caching::serve_stale(error);
        // Stale in place of a fetch that failed: Pingora ends the request
        // with the error and does not keep the client's connection. In
        // place of an origin's 5xx: Pingora still reads the origin's error
        // body after the stale answer is written, and a client's next
        // request arriving meanwhile is taken as bytes after the end of the
        // request (pipelining is off), so the connection is dropped. Either
        // way the answer says the connection closes: its HTTP/1 writer would
        // say keep-alive, and the client's next request would be lost.
        if serve && error.is_some() {
            session.set_keepalive(None);
        }
        serve
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.manifest_answer(session, resp, ctx);
        if let (RouteKind::Pass, Some(admitted)) = (ctx.route, &ctx.admitted) {
            invalidate::after(self, session.req_header(), resp, admitted).await;
        }
        // Forwarded in the PoP: the owner's cache status is the answer's.
        let name = match ctx.route {
            RouteKind::Peer => None,
            _ => self.cache.and_then(|e| e.config.status_header.as_deref()),
        };
        let status = cache_status(session, ctx);
        let renewal = ctx.admitted.as_ref().and_then(|a| a.renewal.as_ref());
        answer::add_cache_fields(resp, name, status, renewal)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.manifest.is_some() {
            manifest::on_body(ctx, body, end_of_stream, &self.metrics);
        }
        Ok(None)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let to = match ctx.origin.upstream {
            Some(to) => Some(to),
            None => self.choose_upstream(session, ctx),
        };
        match to.and_then(|to| Some((to, self.origin.peer_of(to)?))) {
            Some((to, peer)) => {
                ctx.origin.upstream = Some(to);
                self.metrics.count_forward(to);
                Ok(Box::new(peer))
            }
            None => {
                self.origin_failed(ctx, OriginError::Dns);
                Error::e_explain(ErrorType::HTTPStatus(502), "no origin address resolved yet")
            }
        }
    }

    /// A connection to a node failed: it is passed over for a while and the
    /// request moves to the next node on the ring, or to the origin.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(to) = ctx.origin.upstream.take()
            && let Some(node) = to.node()
        {
            self.origin.mark_failed(to);
            self.metrics
                .count_peer_error(to, peer_error_kind(&e, "connect"));
            ctx.origin.tried.push(node);
            ctx.origin.upstream = self.next_upstream(session, ctx, to);
            if ctx.origin.upstream.is_some() {
                e.set_retry(true);
            }
        }
        e
    }

    /// A node that failed before anything was sent to the client is passed
    /// over like one that could not be reached (it died mid-request, or
    /// closed a pooled connection); other errors keep Pingora's policy.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // The client going away is no fault of the node.
        let node_failed = e.esource() == &ErrorSource::Upstream;
        let unsent = session.response_written().is_none();
        match ctx.origin.upstream {
            Some(to @ (Upstream::Peer(node) | Upstream::Parent(node))) if unsent && node_failed => {
                self.origin.mark_failed(to);
                self.metrics
                    .count_peer_error(to, peer_error_kind(&e, "other"));
                ctx.origin.tried.push(node);
                ctx.origin.upstream = self.next_upstream(session, ctx, to);
                e.set_retry(ctx.origin.upstream.is_some());
            }
            _ if session.as_ref().retry_buffer_truncated() => e.set_retry(false),
            _ => e.retry.decide_reuse(client_reused),
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(admitted) = &ctx.admitted else {
            return Error::e_explain(
                ErrorType::InternalError,
                "request reached the origin phase unadmitted",
            );
        };
        // Built from the header Pingora prepared, not the client's: on a
        // cacheable miss Pingora has already dropped Range and conditionals
        // and added its own revalidation conditionals there.
        let to = ctx.origin.upstream.unwrap_or(Upstream::Direct);
        let req = self
            .origin
            .request_to(
                to,
                &admitted.path,
                &admitted.query,
                upstream_request,
                peer_ip(session),
                SystemTime::now(),
            )
            .map_err(|e| Error::explain(ErrorType::InternalError, e))?;
        ctx.origin.authorized = self.origin.passes_credentials(&req);
        *upstream_request = req;
        ctx.origin.sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        self.origin_answered(ctx, status);
        peer::copy_header(self, ctx, upstream_response);
        if !self.origin_speaks_s3(ctx) {
            // A node of the fleet or a plain HTTP origin: answers pass as
            // they are, but for the fields of its connection to this node.
            crate::origin::strip_response(upstream_response);
            caching::received_unsigned(session, upstream_response, ctx);
            return Ok(());
        }
        match response::verdict(status) {
            Verdict::Pass => {
                response::strip_headers(upstream_response);
                // What the range filter adds to every answer of the cache,
                // added before the answer is stored rather than on each hit.
                if session.cache.enabled() {
                    crate::range::advertise(upstream_response);
                }
            }
            Verdict::Refuse {
                refusal,
                origin_error,
            } => {
                if let Some(kind) = origin_error {
                    self.origin_failed(ctx, kind);
                }
                *upstream_response = refusal.header();
                let head = session.req_header().method == http::Method::HEAD;
                ctx.origin.error_body = Some(ErrorBody::new(refusal, head));
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(chunk) = body.as_ref() {
            ctx.origin.bytes += chunk.len() as u64;
            self.metrics.origin_bytes.inc_by(chunk.len() as u64);
        }
        peer::copy_body(self, ctx, body.as_ref(), end_of_stream);
        if let Some(replaced) = ctx.origin.error_body.as_mut()
            && let Some(code) = replaced.replace(body, end_of_stream)
        {
            ctx.origin.s3_code = Some(code);
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if e.esource() == &ErrorSource::Upstream && ctx.origin.error.is_none() {
            self.origin_failed(ctx, OriginError::of_proxy_error(e));
        }
        // Pingora does not keep the client's connection after a failed
        // proxy (it takes it back only when the request's phases end
        // without error): the answer says so. Its HTTP/1 writer would say
        // keep-alive, and a client sending its next request on the
        // connection would find it closed.
        session.set_keepalive(None);
        let code = match Refusal::from_proxy_error(e) {
            Some(refusal) => {
                if let Err(err) = answer::send_refusal(session, refusal).await {
                    tracing::debug!(error = %err, "could not send the error answer");
                }
                refusal.status()
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Pingora puts this summary in its own error log lines: without this,
    /// they would carry the raw target, token included.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        format!(
            "{} {}",
            session.req_header().method,
            self.redacted_target(session.req_header())
        )
    }

    /// A client that went away is no error of ours: no error-level line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        crate::refusal::client_gone(e)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // What was sent; 499 (as nginx logs it) when the client went away
        // before any response header.
        let status = match session.response_written() {
            Some(r) => r.status.as_u16(),
            None if e.is_some_and(crate::refusal::client_gone) => 499,
            None => 0,
        };
        let bytes = session.as_downstream().body_bytes_sent() as u64;
        self.settle_cache_status(session, ctx);
        if let Some(e) = e {
            tracing::debug!(error = %e, "request ended with an error");
        }
        let sent = Sent { status, bytes };
        self.finish(session.req_header(), session.client_addr(), sent, ctx);
    }
}

/// What was sent of an answer, for its log line and metrics.
pub struct Sent {
    /// The status sent (0 when nothing was, 499 when the client went away
    /// first).
    pub status: u16,
    /// The body bytes sent.
    pub bytes: u64,
}

impl Edge {
    /// Counts an answered request and writes its log line: the last step of
    /// every request, on Pingora's path and on the hit lane's.
    pub fn finish(
        &self,
        req: &RequestHeader,
        socket: Option<&pingora::protocols::l4::socket::SocketAddr>,
        sent: Sent,
        ctx: &RequestCtx,
    ) {
        let elapsed = ctx.started.elapsed();
        self.metrics
            .count_request(sent.status, ctx.cache_status, elapsed.as_secs_f64());
        self.metrics.response_bytes.inc_by(sent.bytes);
        let finished = Finished {
            status: sent.status,
            bytes: sent.bytes,
            elapsed,
            cache: ctx.cache_status,
            origin_status: ctx.origin.status,
            origin_duration: ctx.origin.duration,
            origin_error: ctx.origin.error,
            s3_code: ctx.origin.s3_code.as_deref(),
            auth: ctx.auth,
            sub: ctx.admitted.as_ref().and_then(|a| a.subject.as_deref()),
            client: ctx.client,
        };
        let sources = self.verifier.token_sources();
        self.access_log
            .write_answered(req, socket, sources, &finished);
    }
}
