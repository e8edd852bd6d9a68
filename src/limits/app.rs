//! Pingora's `ServerApp` for the client listeners: admits each connection
//! against the limits (closing it at once when one is reached), completes
//! the TLS handshake of an HTTPS connection within its deadline (the
//! connection holds its place meanwhile; on a thread busier with
//! handshakes than another, the connection is handed to that one first,
//! see [`super::spread`]), and hands it on, wrapped, to the HTTP proxy
//! application.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::Stream;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::server::ShutdownWatch;
use tokio::runtime::Handle;

use super::h2::HeaderLimited;
use super::spread::{self, Handshake, Place, Spread};
use super::stream::{Counters, Guarded};
use super::table::{ConnectionTable, Permit};
use super::{HeadLimits, Limits};
use crate::lane::Lane;
use crate::metrics::Metrics;

pub struct LimitedApp<A> {
    inner: Arc<HeaderLimited<A>>,
    table: Arc<ConnectionTable>,
    header_timeout: Duration,
    head: HeadLimits,
    tls_handshake_timeout: Duration,
    /// The HTTPS endpoints this copy serves: the address each listens on,
    /// and its TLS acceptor. Empty for plain HTTP.
    tls: Vec<(SocketAddr, Arc<Acceptor>)>,
    /// The worker threads' TLS handshakes under way.
    spread: Arc<Spread>,
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
            tls_handshake_timeout: self.tls_handshake_timeout,
            tls: self.tls.clone(),
            spread: self.spread.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<A> LimitedApp<A> {
    /// The application of the client listeners, their requests offered to
    /// `lane` first when there is one ([`crate::lane`]).
    pub fn new(inner: A, limits: &Limits, metrics: Arc<Metrics>, lane: Option<Lane>) -> Self {
        let table = ConnectionTable::new(
            limits.max_connections,
            limits.max_connections_per_client,
            metrics.ops.connections_open.clone(),
        );
        Self::with_table(inner, table, limits, limits.head, metrics, lane)
    }

    /// The application of the peer listener: a table of its own, up to
    /// `limits.max_connections` with no limit per address (a PoP's few
    /// nodes each hold many connections to it), counted in
    /// `cdn_node_peer_connections_open`; head limits with room for what a
    /// hop adds to a client's request ([`HeadLimits::for_hops`]), the
    /// header timeout as for clients.
    pub fn for_peers(inner: A, limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let table = ConnectionTable::new(
            limits.max_connections,
            None,
            metrics.cluster.connections_open.clone(),
        );
        Self::with_table(inner, table, limits, limits.head.for_hops(), metrics, None)
    }

    fn with_table(
        inner: A,
        table: ConnectionTable,
        limits: &Limits,
        head: HeadLimits,
        metrics: Arc<Metrics>,
        lane: Option<Lane>,
    ) -> Self {
        LimitedApp {
            inner: Arc::new(HeaderLimited::new(
                inner,
                head,
                metrics.ops.request_header_refusals.clone(),
                lane.map(Arc::new),
            )),
            table: Arc::new(table),
            header_timeout: limits.header_timeout,
            head,
            tls_handshake_timeout: limits.tls_handshake_timeout,
            tls: Vec::new(),
            spread: Spread::new(),
            metrics,
        }
    }

    /// The number of client connections open, across every listener and
    /// worker sharing this application's table, kept up to date.
    pub fn open_connections(&self) -> tokio::sync::watch::Receiver<usize> {
        self.table.watch_open()
    }

    /// Serves the connections accepted on `addr` with TLS: the listener is
    /// added to Pingora as plain TCP and the handshake happens here, once
    /// the connection is admitted.
    pub fn serve_tls(&mut self, addr: SocketAddr, acceptor: Acceptor) {
        self.tls.push((addr, Arc::new(acceptor)));
    }

    /// The acceptor of the endpoint a connection arrived on (its local
    /// address, or the port of an endpoint listening on every address).
    fn acceptor(&self, local: Option<SocketAddr>) -> Option<&Arc<Acceptor>> {
        let local = local?;
        let ip = local.ip().to_canonical();
        self.tls
            .iter()
            .find(|(addr, _)| {
                addr.port() == local.port()
                    && (addr.ip().is_unspecified() || addr.ip().to_canonical() == ip)
            })
            .map(|(_, acceptor)| acceptor)
    }

    /// The TLS handshake of an admitted connection, within
    /// `limits.tls_handshake_timeout_ms`; `None` (counted) when it fails.
    async fn handshake(&self, stream: Stream) -> Option<Stream> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(acceptor) = self.acceptor(local).cloned() else {
            tracing::error!(?local, "a connection on no HTTPS listener's address");
            return None;
        };
        let tcp = match stream.into_any().downcast::<L4Stream>() {
            Ok(tcp) => *tcp,
            Err(_) => {
                tracing::error!("an HTTPS connection that is not a TCP stream");
                return None;
            }
        };
        let failed = |reason: &str| {
            self.metrics
                .ops
                .tls_handshake_failures
                .with_label_values(&[reason])
                .inc();
        };
        // Pinned here, a handshake that runs out of time (and the connection
        // it holds) is dropped after it is counted, at the end.
        let handshake = std::pin::pin!(acceptor.tls_handshake(tcp));
        match tokio::time::timeout(self.tls_handshake_timeout, handshake).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                failed("error");
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                failed("timeout");
                tracing::debug!(
                    "TLS handshake not complete within limits.tls_handshake_timeout_ms"
                );
                None
            }
        }
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> LimitedApp<A> {
    fn counters(&self) -> Counters {
        Counters {
            timeouts: self.metrics.ops.header_timeouts.clone(),
            refusals: self.metrics.ops.request_header_refusals.clone(),
        }
    }

    /// Serves an admitted connection, its handshake done, to its end: to
    /// the hit lane or Pingora's session. What comes back is a connection
    /// kept alive for Pingora's accept loop to offer again.
    async fn serve(
        self: &Arc<Self>,
        mut guarded: Guarded,
        client: Option<IpAddr>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
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
        let h2c = self.inner.server_options().is_some_and(|o| o.h2c);
        if let Some(lane) = self.inner.lane()
            && !h2c
            && Lane::takes(&guarded)
        {
            return lane.serve(&self.inner, guarded, shutdown).await;
        }
        self.inner.process_new(Box::new(guarded), shutdown).await
    }

    /// Hands an admitted HTTPS connection, before its handshake, to another
    /// worker thread's `runtime`, which does the handshake and serves it
    /// there to its end, offering a connection kept alive again as
    /// Pingora's accept loop would here.
    fn move_to(
        self: &Arc<Self>,
        runtime: Handle,
        handshake: Handshake,
        stream: Stream,
        permit: Permit,
        client: Option<IpAddr>,
        shutdown: &ShutdownWatch,
    ) {
        let socket = match spread::detach(stream) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!(?client, error = %e, "a connection could not be moved");
                return;
            }
        };
        self.metrics.ops.tls_handshakes_moved.inc();
        let app = self.clone();
        let shutdown = shutdown.clone();
        runtime.spawn(async move {
            let stream = match spread::attach(socket) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(?client, error = %e, "a moved connection could not be taken up");
                    return;
                }
            };
            let tls = app.handshake(stream).await;
            drop(handshake);
            let Some(tls) = tls else { return };
            let guarded = Guarded::new(tls, permit, app.header_timeout, app.head, app.counters());
            let mut next = app.serve(guarded, client, &shutdown).await;
            while let Some(stream) = next {
                next = app.process_new(stream, &shutdown).await;
            }
        });
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
        // The connection holds its place during the handshake: a client
        // that never finishes one holds it until the deadline only.
        let (timeout, head) = (self.header_timeout, self.head);
        let guarded = if self.tls.is_empty() {
            let Some(plain) = Guarded::plain(stream, permit, timeout, head, self.counters()) else {
                tracing::error!(
                    ?client,
                    "a TCP connection came from Pingora as another stream"
                );
                return None;
            };
            plain
        } else {
            let handshake = match self.spread.begin() {
                Place::Here(handshake) => handshake,
                Place::There(runtime, handshake) => {
                    self.move_to(runtime, handshake, stream, permit, client, shutdown);
                    return None;
                }
            };
            let stream = self.handshake(stream).await;
            drop(handshake);
            Guarded::new(stream?, permit, timeout, head, self.counters())
        };
        self.serve(guarded, client, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
