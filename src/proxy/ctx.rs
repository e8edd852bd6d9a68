//! What the node learns about one request as it moves through the phases,
//! read at the end by the access log and the metrics.

use std::time::{Duration, Instant};

use super::admit::Admitted;
use crate::refusal::Refusal;

/// Cache status labels (metrics `cache_status`, access log `cache`).
pub const CACHE_NONE: &str = "none";
pub const CACHE_BYPASS: &str = "bypass";

pub struct RequestCtx {
    pub started: Instant,
    pub admitted: Option<Admitted>,
    /// Set when the node answered with an error of its own.
    pub refusal: Option<Refusal>,
    /// `ok`, `public`, or the rejection reason; `-` before the gate ran.
    pub auth: &'static str,
    pub cache_status: &'static str,
    /// The cache was looked up and missed (stays true when the fill is then
    /// refused and the cache disabled for this request).
    pub cache_missed: bool,
    pub origin_sent: Option<Instant>,
    pub origin_status: Option<u16>,
    pub origin_duration: Option<Duration>,
    pub origin_bytes: u64,
    pub origin_error: Option<&'static str>,
    /// S3's error code, for the log only.
    pub s3_code: Option<String>,
    /// While the origin's error body is replaced by ours: what was captured.
    pub error_body: Option<Vec<u8>>,
    pub replacement_body: Option<&'static str>,
    /// The client's address (socket peer or trusted-proxy chain), for the access log.
    pub client: Option<std::net::IpAddr>,
    /// Set when the node answered without Pingora's cache phases (the slice
    /// path, a memory hit): its cache label.
    pub served_status: Option<&'static str>,
    /// The cache key, built (and hashed) in `request_filter`, until Pingora
    /// asks for it.
    pub cache_key: Option<pingora_cache::CacheKey>,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            admitted: None,
            refusal: None,
            auth: "-",
            cache_status: CACHE_NONE,
            cache_missed: false,
            origin_sent: None,
            origin_status: None,
            origin_duration: None,
            origin_bytes: 0,
            origin_error: None,
            s3_code: None,
            error_body: None,
            replacement_body: None,
            client: None,
            served_status: None,
            cache_key: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}
