//! Origin addresses, resolved off the request path. Pingora's `HttpPeer::new`
//! resolves a host name synchronously and panics when that fails, so the node
//! resolves at start-up and then refreshes in the background; requests only
//! read the last good set.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub struct Resolver {
    host: String,
    port: u16,
    interval: Duration,
    addrs: RwLock<Arc<Vec<SocketAddr>>>,
    next: AtomicUsize,
}

impl Resolver {
    pub fn new(host: &str, port: u16, interval: Duration) -> Resolver {
        Resolver {
            host: host.to_string(),
            port,
            interval,
            addrs: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
        }
    }

    fn is_literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// Resolves now, blocking; used once at start-up. Keeps the previous set
    /// when resolution fails or returns nothing.
    pub fn resolve_blocking(&self) -> Result<usize, String> {
        let found: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        self.store(found)
    }

    async fn resolve_async(&self) -> Result<usize, String> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        self.store(found)
    }

    fn store(&self, mut found: Vec<SocketAddr>) -> Result<usize, String> {
        if found.is_empty() {
            return Err(format!("{} resolved to no address", self.host));
        }
        found.sort();
        found.dedup();
        let n = found.len();
        if let Ok(mut guard) = self.addrs.write() {
            *guard = Arc::new(found);
        }
        Ok(n)
    }

    /// The next address in rotation, or `None` before the first successful
    /// resolution.
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.addrs.read().ok()?.clone();
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        Some(addrs[i])
    }

    pub fn is_ready(&self) -> bool {
        self.addrs.read().map(|a| !a.is_empty()).unwrap_or(false)
    }
}

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.is_literal() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            if let Err(e) = self.resolve_async().await {
                tracing::warn!(error = %e, "origin address refresh failed; keeping the last good addresses");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_resolves_and_rotates() {
        let r = Resolver::new("127.0.0.1", 9000, Duration::from_secs(30));
        assert!(!r.is_ready());
        assert_eq!(r.pick(), None);
        assert_eq!(r.resolve_blocking(), Ok(1));
        assert!(r.is_ready());
        assert_eq!(r.pick(), Some("127.0.0.1:9000".parse().unwrap()));
    }

    #[test]
    fn failure_keeps_the_last_good_set() {
        let r = Resolver::new("localhost", 9000, Duration::from_secs(30));
        assert!(r.resolve_blocking().is_ok());
        let before = r.pick();
        assert!(r.store(Vec::new()).is_err());
        assert!(r.pick().is_some());
        assert!(before.is_some());
    }
}
