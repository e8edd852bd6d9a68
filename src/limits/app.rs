//! Pingora's `ServerApp` for the client listeners: admits each connection
//! against the limits (closing it at once when one is reached) and hands it
//! on, wrapped, to the HTTP proxy application.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use super::h2::HeaderLimited;
use super::stream::{Counters, Guarded};
use super::table::ConnectionTable;
use super::{HeadLimits, Limits};
use crate::metrics::Metrics;

pub struct LimitedApp<A> {
    inner: Arc<HeaderLimited<A>>,
    table: Arc<ConnectionTable>,
    header_timeout: Duration,
    head: HeadLimits,
    metrics: Arc<Metrics>,
}

/// Clones share the application and the connection table: the limits hold
/// across every listener and worker thread.
impl<A> Clone for LimitedApp<A> {
    fn clone(&self) -> Self {
        LimitedApp {
            inner: self.inner.clone(),
            table: self.table.clone(),
            header_timeout: self.header_timeout,
            head: self.head,
            metrics: self.metrics.clone(),
        }
    }
}

impl<A> LimitedApp<A> {
    pub fn new(inner: A, limits: &Limits, metrics: Arc<Metrics>) -> Self {
        LimitedApp {
            inner: Arc::new(HeaderLimited::new(
                inner,
                limits.head,
                metrics.ops.request_header_refusals.clone(),
            )),
            table: Arc::new(ConnectionTable::new(
                limits.max_connections,
                limits.max_connections_per_client,
                metrics.ops.connections_open.clone(),
            )),
            header_timeout: limits.header_timeout,
            head: limits.head,
            metrics,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for LimitedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let permit = match self.table.admit(client) {
            Ok(p) => p,
            Err(refused) => {
                self.metrics
                    .ops
                    .connections_refused
                    .with_label_values(&[refused.reason()])
                    .inc();
                tracing::debug!(?client, reason = refused.reason(), "connection refused");
                // Dropping the stream closes the connection.
                return None;
            }
        };
        let mut guarded = Guarded::new(
            stream,
            permit,
            self.header_timeout,
            self.head,
            Counters {
                timeouts: self.metrics.ops.header_timeouts.clone(),
                refusals: self.metrics.ops.request_header_refusals.clone(),
            },
        );
        // Pingora drops a connection still waiting for its first request
        // when the service shuts down (as it drops idle keep-alive ones),
        // so a connection accepted just before a graceful upgrade or stop
        // would be closed unanswered. Its first bytes are awaited here,
        // where the shutdown does not reach (peeked, or read and held on a
        // TLS stream): once they are in, Pingora reads the request before
        // it looks at the shutdown.
        if let Err(e) = guarded.first_bytes().await {
            tracing::debug!(?client, error = %e, "no request on the connection");
            return None;
        }
        self.inner.process_new(Box::new(guarded), shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
