//! The client listeners: plain HTTP served by one worker service per thread,
//! HTTPS endpoints with their reloadable certificates, and the HTTP server
//! options both use.

mod workers;

pub use workers::{HttpSockets, Worker};

use std::sync::Arc;

use pingora::apps::{HttpServerApp, HttpServerOptions};
use pingora::services::listening::Service;

use crate::limits::LimitedApp;
use crate::tls::{HttpsListener, ReloadingCert, settings};

/// Options for the proxy application: an HTTP/2 connection with nothing in
/// flight is closed after [`crate::limits::H2_IDLE_TIMEOUT`].
pub fn server_options() -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(crate::limits::H2_IDLE_TIMEOUT);
    options
}

/// Adds one endpoint per HTTPS listener; returns their certificates for
/// the reloader. Pingora listens on each as plain TCP and the application
/// completes the TLS handshake, so that a connection is admitted against
/// the connection limits before its handshake, not after. Fails when a
/// pair no longer loads (it was checked moments ago when the configuration
/// was read).
pub fn add_https<A: HttpServerApp + Send + Sync + 'static>(
    service: &mut Service<LimitedApp<A>>,
    listeners: &[HttpsListener],
) -> Result<Vec<Arc<ReloadingCert>>, String> {
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
        let app = service
            .app_logic_mut()
            .ok_or_else(|| format!("HTTPS listener {}: the service is running already", l.addr))?;
        app.serve_tls(l.addr, settings(l, cert.clone()).build());
        service.add_tcp(&l.addr.to_string());
        certs.push(cert);
    }
    Ok(certs)
}
