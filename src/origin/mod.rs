//! The S3 origin: where misses go, how the request to S3 is built and signed,
//! and what S3's answers mean for the client.

mod error;
pub mod resolve;
pub mod response;
pub mod settings;
pub mod sigv4;

use std::sync::Arc;
use std::time::SystemTime;

use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

pub use error::OriginError;
use resolve::Resolver;
use settings::OriginConfig;

/// Client request headers that may reach S3. Everything else (cookies, the
/// client's Authorization, hop-by-hop and `X-Forwarded-*`, `X-Original-URL`)
/// stays at the edge.
const FORWARDED_HEADERS: &[&str] = &[
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

pub struct Origin {
    pub config: OriginConfig,
    pub resolver: Arc<Resolver>,
}

impl Origin {
    pub fn new(config: OriginConfig) -> Origin {
        let resolver = Arc::new(Resolver::new(
            &config.request_host(),
            config.port,
            config.resolve_interval,
        ));
        Origin { config, resolver }
    }

    /// A peer for the next request, or `None` while no address is known.
    pub fn peer(&self) -> Option<HttpPeer> {
        let addr = self.resolver.pick()?;
        let mut peer = HttpPeer::new(addr, self.config.tls, self.config.request_host());
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.read_timeout = Some(self.config.read_timeout);
        peer.options.write_timeout = Some(self.config.read_timeout);
        Some(peer)
    }

    /// Builds the whole request to S3 for a canonical path and query: a fresh
    /// header, not an edited copy of `prepared` (the request as Pingora would
    /// send it), so nothing the client sent leaks through unless listed in
    /// [`FORWARDED_HEADERS`].
    pub fn request(
        &self,
        canonical_path: &str,
        canonical_query: &str,
        prepared: &RequestHeader,
        now: SystemTime,
    ) -> Result<RequestHeader, String> {
        // Pingora turns a HEAD miss into a GET when it will cache the
        // answer: follow the method it prepared.
        let method = if prepared.method == http::Method::HEAD {
            "HEAD"
        } else {
            "GET"
        };
        let uri = self.config.object_uri(canonical_path);
        let target = if canonical_query.is_empty() {
            uri.clone()
        } else {
            format!("{uri}?{canonical_query}")
        };
        let mut req = RequestHeader::build(method, target.as_bytes(), Some(12))
            .map_err(|e| format!("origin request: {e}"))?;
        let host = self.config.host_header();
        req.insert_header("host", &host)
            .map_err(|e| format!("origin host header: {e}"))?;
        for name in FORWARDED_HEADERS {
            for value in prepared.headers.get_all(*name) {
                req.append_header(*name, value.clone())
                    .map_err(|e| format!("origin header {name}: {e}"))?;
            }
        }
        if let Some(creds) = &self.config.credentials {
            let signed = sigv4::sign(
                method,
                &host,
                &uri,
                canonical_query,
                &self.config.region,
                creds,
                now,
            )
            .map_err(|e| format!("signing: {e}"))?;
            for (name, value) in signed {
                req.insert_header(name, value)
                    .map_err(|e| format!("signature header: {e}"))?;
            }
        }
        Ok(req)
    }
}
