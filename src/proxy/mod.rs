//! The request path: Pingora's `ProxyHttp` phases, each handing its work to
//! the module that owns the concern (gate, origin, refusal, metrics, log).

pub mod admit;
pub mod answer;
mod caching;
pub mod ctx;
mod memory_hit;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;
use pingora_proxy::{FailToProxy, RangeType};

use pingora_cache::{CacheKey, NoCacheReason, RespCacheable};

use crate::access_log::{AccessLog, Client, Entry};
use crate::auth::{Verifier, redact_query};
use crate::cache::engine::Engine;
use crate::cache::status;
use crate::metrics::{Metrics, status_class};
use crate::origin::Origin;
use crate::origin::response::{self, Verdict};
use crate::refusal::Refusal;
use ctx::{CACHE_BYPASS, RequestCtx};

pub struct Edge {
    pub verifier: Arc<Verifier>,
    pub origin: Arc<Origin>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// `None` when no cache is configured.
    pub cache: Option<&'static Engine>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

    /// Sends one of our own error answers, unless a response is already
    /// under way.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refusal: Refusal,
    ) -> Result<()> {
        ctx.refusal = Some(refusal);
        if session.response_written().is_some() {
            return Ok(());
        }
        let head = session.req_header().method == "HEAD";
        let body = Bytes::from_static(refusal.body().as_bytes());
        answer::send_whole(session, refusal.header(), body, head).await
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// No downstream modules. Pingora's default is its response compression
    /// at level 0 (off): a context built and two filters awaited on every
    /// request, for bodies (video) the node never compresses.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client = self
            .verifier
            .client_address(peer, &session.req_header().headers);
        match admit::admit_fetching(
            session.req_header(),
            ctx.client,
            &self.verifier,
            &self.origin.config,
            unix_now(),
        )
        .await
        {
            Ok(admitted) => {
                ctx.auth = admitted.auth;
                ctx.cache_status = CACHE_BYPASS;
                if let Some(engine) = self.cache {
                    // Hashed once, for the slicer's look-up and the cache's.
                    let key = caching::key(&admitted);
                    let hit =
                        memory_hit::serve(engine, session, &key, admitted.renewal.as_ref()).await;
                    if !matches!(hit, Ok(false)) {
                        // A hit, also when the client went away during it.
                        ctx.admitted = Some(admitted);
                        ctx.served_status = Some(status::HIT);
                        return hit;
                    }
                    let served = crate::slice::serve(
                        engine,
                        &self.origin,
                        &self.metrics,
                        session,
                        crate::slice::Asked {
                            key: &key,
                            path: &admitted.path,
                            query: &admitted.query,
                            renewal: admitted.renewal.as_ref(),
                        },
                    )
                    .await;
                    ctx.admitted = Some(admitted);
                    if let crate::slice::Served::Done(label) = served? {
                        ctx.served_status = Some(label);
                        return Ok(true);
                    }
                    ctx.cache_key = Some(key);
                    return Ok(false);
                }
                ctx.admitted = Some(admitted);
                Ok(false)
            }
            Err(refused) => {
                if let Some(reason) = refused.auth_reason {
                    ctx.auth = reason;
                    self.metrics
                        .auth_rejections
                        .with_label_values(&[reason])
                        .inc();
                } else if let Refusal::BadRequest { reason } = refused.refusal {
                    self.metrics
                        .request_rejections
                        .with_label_values(&[reason])
                        .inc();
                } else if refused.refusal == Refusal::MethodNotAllowed {
                    self.metrics
                        .request_rejections
                        .with_label_values(&["method"])
                        .inc();
                }
                self.refuse(session, ctx, refused.refusal).await?;
                Ok(true)
            }
        }
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if let (Some(engine), Some(_)) = (self.cache, &ctx.admitted) {
            caching::enable(session, engine);
        }
        Ok(())
    }

    fn cache_miss(&self, session: &mut Session, ctx: &mut RequestCtx) {
        ctx.cache_missed = true;
        session.cache.cache_miss();
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
        _session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(match self.cache {
            Some(engine) => caching::cacheable(engine, resp),
            None => RespCacheable::Uncacheable(NoCacheReason::NeverEnabled),
        })
    }

    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> RangeType {
        crate::range::apply(session.req_header(), resp)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        caching::serve_stale(error)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let name = self.cache.and_then(|e| e.config.status_header.as_deref());
        let label = status::label(&session.cache.phase(), ctx.cache_missed);
        let renewal = ctx.admitted.as_ref().and_then(|a| a.renewal.as_ref());
        answer::add_cache_fields(resp, name, label, renewal)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match self.origin.peer() {
            Some(peer) => Ok(Box::new(peer)),
            None => {
                ctx.origin_error = Some("dns");
                self.metrics.origin_errors.with_label_values(&["dns"]).inc();
                Error::e_explain(ErrorType::HTTPStatus(502), "no origin address resolved yet")
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
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
        let req = self
            .origin
            .request(
                &admitted.path,
                &admitted.query,
                upstream_request,
                SystemTime::now(),
            )
            .map_err(|e| Error::explain(ErrorType::InternalError, e))?;
        *upstream_request = req;
        ctx.origin_sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.origin_status = Some(status);
        if let Some(sent) = ctx.origin_sent {
            let took = sent.elapsed();
            ctx.origin_duration = Some(took);
            self.metrics.origin_duration.observe(took.as_secs_f64());
        }
        self.metrics
            .origin_requests
            .with_label_values(&[status_class(status)])
            .inc();
        match response::verdict(status) {
            Verdict::Pass => {
                let drop: Vec<_> = upstream_response
                    .headers
                    .keys()
                    .filter(|n| !response::passes_header(n.as_str()))
                    .cloned()
                    .collect();
                for name in drop {
                    upstream_response.remove_header(&name);
                }
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
                    ctx.origin_error = Some(kind);
                    self.metrics.origin_errors.with_label_values(&[kind]).inc();
                }
                ctx.refusal = Some(refusal);
                *upstream_response = refusal.header();
                ctx.error_body = Some(Vec::new());
                if session.req_header().method != "HEAD" {
                    ctx.replacement_body = Some(refusal.body());
                }
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
            ctx.origin_bytes += chunk.len() as u64;
            self.metrics.origin_bytes.inc_by(chunk.len() as u64);
        }
        if let Some(captured) = ctx.error_body.as_mut() {
            if let Some(chunk) = body.take() {
                let room = response::ERROR_BODY_LIMIT.saturating_sub(captured.len());
                captured.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if end_of_stream {
                ctx.s3_code = response::error_code(captured);
                *body = ctx
                    .replacement_body
                    .map(|b| Bytes::from_static(b.as_bytes()));
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if e.esource() == &ErrorSource::Upstream && ctx.origin_error.is_none() {
            let kind = crate::refusal::origin_error_kind(e);
            ctx.origin_error = Some(kind);
            self.metrics.origin_errors.with_label_values(&[kind]).inc();
        }
        let code = match Refusal::from_proxy_error(e) {
            Some(refusal) => {
                if let Err(err) = self.refuse(session, ctx, refusal).await {
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
        let elapsed = ctx.started.elapsed();
        let m = &self.metrics;
        if self.cache.is_some() && ctx.admitted.is_some() {
            ctx.cache_status = ctx
                .served_status
                .unwrap_or_else(|| status::label(&session.cache.phase(), ctx.cache_missed));
            m.count_lookup(ctx.cache_status);
            if let Some(waited) = session.cache.lock_duration() {
                m.cache_fill_wait.observe(waited.as_secs_f64());
            }
        }
        m.count_request(status, ctx.cache_status, elapsed.as_secs_f64());
        m.response_bytes.inc_by(bytes);
        if let Some(e) = e {
            tracing::debug!(error = %e, "request ended with an error");
        }
        let req = session.req_header();
        // Redacted as the line is written: no copy of the target is made.
        // (Validating is quicker than the lossy decode, which is only for
        // targets that are not UTF-8.)
        let raw = req.raw_path();
        let target = std::str::from_utf8(raw)
            .map(std::borrow::Cow::Borrowed)
            .unwrap_or_else(|_| String::from_utf8_lossy(raw));
        // The socket address, unless a trusted proxy named another client.
        let socket = session.client_addr();
        let named;
        let client = match (ctx.client, socket.and_then(|a| a.as_inet())) {
            (Some(ip), Some(peer)) if ip != peer.ip().to_canonical() => {
                named = ip;
                Some(Client::Shown(&named))
            }
            (_, Some(std::net::SocketAddr::V4(peer))) => Some(Client::V4(*peer)),
            _ => socket.map(|a| Client::Shown(a)),
        };
        let sub = ctx.admitted.as_ref().and_then(|a| a.subject.as_deref());
        self.access_log.write(&Entry {
            time: SystemTime::now(),
            client,
            method: req.method.as_str(),
            target: &target,
            token_sources: self.verifier.token_sources(),
            status,
            bytes,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            cache: ctx.cache_status,
            origin_status: ctx.origin_status,
            origin_ms: ctx.origin_duration.map(|d| d.as_secs_f64() * 1000.0),
            origin_error: ctx.origin_error,
            s3_code: ctx.s3_code.as_deref(),
            auth: ctx.auth,
            sub,
        });
    }
}
