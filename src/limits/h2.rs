//! The HTTP application as the connection limits hand it connections: the
//! proxy, with the head size limits applied to HTTP/2 requests. The
//! HTTP/2 layer advertises `limits.max_header_bytes` as
//! `SETTINGS_MAX_HEADER_LIST_SIZE` and answers a longer header list with
//! 431 itself (the request never reaches the node); a request within it
//! with one field, or a `:path`, over `limits.max_header_field_bytes` is
//! answered here, 431 or 414, on its stream alone. A field counts as its
//! HTTP/1.1 line would (`name: value`), the path as its request line.
//! HTTP/1 heads are measured on the connection, as they arrive
//! (`stream.rs`). A request within the limits is offered to the hit lane
//! ([`crate::lane`]) when the proxy has one, then to the proxy.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::{H2Options, default_h2_options};
use pingora::server::ShutdownWatch;
use prometheus::IntCounterVec;

use super::HeadLimits;
use super::refuse;
use super::watch::Over;
use crate::lane::{Lane, Offered};
use crate::proxy::handed;

/// `" HTTP/1.1"`, which an HTTP/1.1 request line adds after its target.
const VERSION_LEN: usize = 9;

pub struct HeaderLimited<A> {
    inner: Arc<A>,
    limits: HeadLimits,
    refusals: IntCounterVec,
    /// Where requests are offered first, when the proxy has one: HTTP/2
    /// streams here, HTTP/1 connections in `LimitedApp`.
    lane: Option<Arc<Lane>>,
}

impl<A> HeaderLimited<A> {
    pub fn new(
        inner: A,
        limits: HeadLimits,
        refusals: IntCounterVec,
        lane: Option<Arc<Lane>>,
    ) -> Self {
        HeaderLimited {
            inner: Arc::new(inner),
            limits,
            refusals,
            lane,
        }
    }

    pub fn lane(&self) -> Option<&Arc<Lane>> {
        self.lane.as_ref()
    }
}

/// The line limit an HTTP/2 request passes, if any: its request line (as
/// HTTP/1.1 would write it) or one of its fields.
pub fn over_line_limit(req: &RequestHeader, limits: HeadLimits) -> Option<Over> {
    let target = req
        .uri
        .path_and_query()
        .map_or(req.uri.path().len(), |p| p.as_str().len());
    if req.method.as_str().len() + 1 + target + VERSION_LEN > limits.line {
        return Some(Over::RequestLine);
    }
    req.headers
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > limits.line)
        .then_some(Over::Field)
}

/// Answers the refused request on its stream.
async fn refuse(mut session: ServerSession, over: Over) {
    let head_request = session.req_header().method == http::Method::HEAD;
    let written = async {
        session
            .write_response_header(Box::new(refuse::http2_header(over)))
            .await?;
        if !head_request {
            session
                .write_response_body(Bytes::from_static(refuse::body(over).as_bytes()), true)
                .await?;
        }
        session.finish().await
    };
    if let Err(e) = written.await {
        tracing::debug!(error = %e, "the refusal of an HTTP/2 request was not sent");
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for HeaderLimited<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // An HTTP/2 session holds its request already; an HTTP/1 one has
        // not read it yet (its head was measured as it arrived).
        if session.is_http2()
            && let Some(over) = over_line_limit(session.req_header(), self.limits)
        {
            self.refusals.with_label_values(&[over.reason()]).inc();
            tracing::debug!(
                reason = over.reason(),
                "HTTP/2 request head over the limits"
            );
            // Boxed: its writes are the generic session's, sized for
            // HTTP/1, and would enlarge every stream's future.
            Box::pin(refuse(session, over)).await;
            return None;
        }
        if session.is_http2()
            && let Some(lane) = &self.lane
        {
            match lane.answer_stream(&mut session).await {
                Offered::Answered => return None,
                Offered::Pass => {}
                Offered::Handed(admitted) => {
                    let serve = self.inner.process_new_http(session, shutdown);
                    return handed::with(admitted, serve).await;
                }
            }
        }
        self.inner.process_new_http(session, shutdown).await
    }

    /// The proxy's HTTP/2 options (Pingora's bounded defaults when it has
    /// none), with the header list limited to `limits.max_header_bytes`.
    fn h2_options(&self) -> Option<H2Options> {
        let mut options = self.inner.h2_options().unwrap_or_else(default_h2_options);
        options.max_header_list_size(u32::try_from(self.limits.total).unwrap_or(u32::MAX));
        Some(options)
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_an_http2_request_are_measured_as_http1_would_write_them() {
        let limits = HeadLimits {
            total: 4096,
            line: 40,
        };
        // "GET /" + 26 bytes + " HTTP/1.1": 40.
        let path = format!("/{}", "a".repeat(25));
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        assert_eq!(over_line_limit(&req, limits), None);
        let long = format!("{path}?b");
        let req_long = RequestHeader::build("GET", long.as_bytes(), None).unwrap();
        assert_eq!(over_line_limit(&req_long, limits), Some(Over::RequestLine));
        // "x-field: " + 31 bytes: 40.
        req.insert_header("x-field", "b".repeat(31)).unwrap();
        assert_eq!(over_line_limit(&req, limits), None);
        req.insert_header("x-field", "b".repeat(32)).unwrap();
        assert_eq!(over_line_limit(&req, limits), Some(Over::Field));
    }
}
