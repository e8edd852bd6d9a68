//! What the node learns about one request as it moves through the phases,
//! read at the end by the access log and the metrics.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pingora_cache::CacheKey;
use pingora_http::ResponseHeader;

use super::admit::Admitted;
use super::manifest::Pending;
use super::route::RouteKind;
use crate::auth::AuthOutcome;
use crate::cache::status::CacheStatus;
use crate::origin::response::ErrorBody;
use crate::origin::{OriginError, Upstream};

pub struct RequestCtx {
    pub started: Instant,
    /// The route `request_filter` chose.
    pub route: RouteKind,
    pub admitted: Option<Admitted>,
    pub auth: AuthOutcome,
    pub cache_status: CacheStatus,
    /// The cache was looked up and missed (stays true when the fill is then
    /// refused and the cache disabled for this request).
    pub cache_missed: bool,
    /// The cache was looked up and held an expired copy (stays true when
    /// the origin then fails and the cache is disabled for this request).
    pub cache_expired: bool,
    /// Set when the node answered without Pingora's cache phases (the slice
    /// path, a memory hit): its cache status.
    pub served_status: Option<CacheStatus>,
    /// The cache key, built (and hashed) in `request_filter`, until Pingora
    /// asks for it.
    pub cache_key: Option<CacheKey>,
    /// The client's address (socket peer or trusted-proxy chain), for the
    /// access log.
    pub client: Option<IpAddr>,
    pub origin: OriginFacts,
    /// A manifest answered on Pingora's path, to be given the token.
    pub manifest: Option<Pending>,
    /// A forwarded answer being copied into memory ([`crate::cluster::copies`]).
    pub copy: Option<crate::cluster::copies::Capture>,
}

/// What happened at the origin, when the request went there.
#[derive(Default)]
pub struct OriginFacts {
    /// Where the request goes (the origin, a shield, the owner in the PoP).
    pub upstream: Option<Upstream>,
    /// Nodes whose connection failed for this request.
    pub tried: Vec<SocketAddr>,
    pub sent: Option<Instant>,
    pub status: Option<u16>,
    pub duration: Option<Duration>,
    pub bytes: u64,
    pub error: Option<OriginError>,
    /// S3's error code, for the log only.
    pub s3_code: Option<String>,
    /// While the origin's error body is replaced by ours.
    pub error_body: Option<ErrorBody>,
    /// The request sent carried the client's `Authorization` (a plain
    /// HTTP origin's own credentials, not the node's token).
    pub authorized: bool,
    /// The origin's `304` to a revalidation, whose fields update the
    /// stored answer's.
    pub not_modified: Option<Box<ResponseHeader>>,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            route: RouteKind::Refuse,
            admitted: None,
            auth: AuthOutcome::Unchecked,
            cache_status: CacheStatus::None,
            cache_missed: false,
            cache_expired: false,
            served_status: None,
            cache_key: None,
            client: None,
            origin: OriginFacts::default(),
            manifest: None,
            copy: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}
