//! The cache phases of the request path: whether a request uses the cache,
//! its key, whether an origin answer is stored, and when stale is served.

use std::time::SystemTime;

use pingora::prelude::*;
use pingora_cache::{CacheKey, CacheMeta, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;

use super::admit::Admitted;
use crate::cache::engine::Engine;
use crate::cache::key;
use crate::cache::policy::Decision;

/// Turns the cache on for an admitted request.
pub fn enable(session: &mut Session, engine: &Engine) {
    session.cache.enable(
        engine.store,
        Some(engine.eviction),
        None,
        Some(engine.lock),
        None,
    );
    let max = usize::try_from(engine.config.max_object_size).unwrap_or(usize::MAX);
    session.cache.set_max_file_size_bytes(max);
}

pub fn key(admitted: &Admitted) -> CacheKey {
    key::object(&admitted.path, &admitted.query)
}

/// Whether an origin answer is stored, and its freshness.
pub fn cacheable(engine: &Engine, resp: &ResponseHeader) -> RespCacheable {
    let now = SystemTime::now();
    match engine.config.policy.decide(resp, now) {
        Decision::Store {
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
        } => RespCacheable::Cacheable(CacheMeta::new(
            fresh_until,
            now,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            resp.clone(),
        )),
        Decision::Skip(_) => RespCacheable::Uncacheable(NoCacheReason::OriginNotCache),
    }
}

/// Stale is served while revalidating in the background (within the
/// stored stale-while-revalidate window, which Pingora checks), and when the
/// origin fails (within stale-if-error).
pub fn serve_stale(error: Option<&Error>) -> bool {
    match error {
        None => true,
        Some(e) => {
            e.esource() == &ErrorSource::Upstream
                || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500)
        }
    }
}
