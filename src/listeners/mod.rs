//! The listeners: the client's plain HTTP and HTTPS and the peer listener,
//! each served by one worker service per thread, HTTPS with its reloadable
//! certificates, and the HTTP server options they use.

mod workers;

pub use workers::{HttpSockets, Kind, WRITE_BUFFER, Worker};

use std::sync::Arc;

use pingora::apps::{HttpServerApp, HttpServerOptions};
use pingora::server::Server;

use crate::fast_exit::Finishing;
use crate::limits::LimitedApp;
use crate::tls::{HttpsListener, ReloadingCert, acceptor};

/// Options for the proxy application: an HTTP/2 connection with nothing in
/// flight is closed after [`crate::limits::H2_IDLE_TIMEOUT`].
pub fn server_options() -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(crate::limits::H2_IDLE_TIMEOUT);
    options
}

/// Adds `workers` worker services serving `app` on every address of
/// `addrs` (as plain TCP: an HTTPS app does its own handshake), sockets
/// inherited in an upgrade (`inherit`). Fails when an address cannot be
/// listened on.
pub fn add_workers<A: HttpServerApp + Send + Sync + 'static>(
    server: &mut Server,
    app: &LimitedApp<A>,
    kind: Kind,
    addrs: &[std::net::SocketAddr],
    workers: usize,
    inherit: bool,
    accepting: &Finishing,
) -> Result<(), String> {
    if addrs.is_empty() {
        return Ok(());
    }
    let sockets = HttpSockets::bind(kind, addrs, workers, inherit)?;
    for index in 0..workers {
        server.add_service(Worker::new(
            index,
            app.clone(),
            sockets.clone(),
            accepting.enter(),
        ));
    }
    Ok(())
}

/// Adds `workers` worker services, as for plain HTTP, serving every
/// HTTPS listener with a copy of `app` that completes the TLS handshake;
/// returns the listeners' certificates for the reloader. Pingora listens on
/// each as plain TCP and the application does the handshake, so that a
/// connection is admitted against the connection limits before its
/// handshake, not after. Fails when a pair no longer loads (it was checked
/// moments ago when the configuration was read) or an address cannot be
/// listened on.
pub fn add_https<A: HttpServerApp + Send + Sync + 'static>(
    server: &mut Server,
    app: &LimitedApp<A>,
    listeners: &[HttpsListener],
    workers: usize,
    inherit: bool,
    accepting: &Finishing,
) -> Result<Vec<Arc<ReloadingCert>>, String> {
    let mut app = app.clone();
    let mut certs = Vec::new();
    for l in listeners {
        let cert = ReloadingCert::open(&l.cert_file, &l.key_file).map_err(|e| {
            format!(
                "HTTPS listener {}: {} / {}: {}",
                l.addr,
                l.cert_file.display(),
                l.key_file.display(),
                e.message()
            )
        })?;
        let cert = Arc::new(cert);
        app.serve_tls(l.addr, acceptor(l, cert.clone()));
        certs.push(cert);
    }
    let addrs: Vec<_> = listeners.iter().map(|l| l.addr).collect();
    add_workers(
        server,
        &app,
        Kind::Https,
        &addrs,
        workers,
        inherit,
        accepting,
    )?;
    Ok(certs)
}
