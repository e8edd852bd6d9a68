//! Fresh disk hits the HTTP/1 hit lane sends from their body file over a
//! plain-TCP connection ([`crate::lane`]'s `sendfile`): unconditional GETs
//! and HEADs of a 200 with a `Content-Length`, too large for memory, whose
//! body the page cache holds; whole, or one range of it (a player's
//! `Range: bytes=0-` or seek). Any other object is a memory hit or takes
//! Pingora's path, as before, and so does a range of several parts.
//!
//! The answer is the one Pingora's hit path gives, field for field and in
//! the same order: the stored header prepared as a memory hit's
//! ([`memory_hit::prepare`]), the range applied by the same filter as
//! Pingora's `range_header_filter` (before the cache status, as there), its
//! `Age` set and a renewed token appended; the eviction manager is told of
//! the access as Pingora's `cache_found` tells it.

use std::time::SystemTime;

use http::header::RANGE;
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::RangeType;

use super::memory_hit;
use crate::answer;
use crate::auth::Renewed;
use crate::cache::engine::Engine;
use crate::cache::status::CacheStatus;
use crate::cache::store::{FileBody, FileHit, Held, Source};

/// The object of `key` when it is fresh and whole, from where `source`
/// says: its body file when the page cache holds it ([`Held::File`]), or
/// its copy in memory; `None` when neither.
pub fn held(engine: &'static Engine, key: &CacheKey, source: Source) -> Result<Option<Held>> {
    engine.store.fresh_hit(
        key,
        SystemTime::now(),
        memory_hit::sendable,
        |h| memory_hit::prepare(engine, h),
        source,
    )
}

/// Applies the request's `Range` (and `If-Range`) to `hit`: its header
/// becomes the 206 or 416 that Pingora's range filter makes, its body the
/// part to send (nothing for a 416). `false` for a range of several parts,
/// left to Pingora's path, which frames them.
pub fn cut_to_range(
    engine: &'static Engine,
    req: &RequestHeader,
    hit: &mut FileHit,
) -> Result<bool> {
    if !req.headers.contains_key(RANGE) {
        return Ok(true);
    }
    // Pingora's path adds the cache status after the range filter: it is
    // taken out and put back after the range's fields.
    let name = engine.config.status_header.as_deref();
    if let Some(name) = name {
        hit.header.remove_header(name);
    }
    let range = crate::range::apply(req, &mut hit.header);
    answer::add_cache_fields(&mut hit.header, name, CacheStatus::Hit, None)?;
    let body = &mut hit.body;
    match range {
        RangeType::None => {}
        RangeType::Single(part) => {
            body.offset += part.start as u64;
            body.len = (part.end - part.start) as u64;
        }
        RangeType::Invalid => body.len = 0,
        RangeType::Multi(_) => return Ok(false),
    }
    Ok(true)
}

/// The answer of `hit`, its access told: the stored header with its `Age`
/// and a renewed token, and the body file.
pub fn answer(
    engine: &'static Engine,
    hit: FileHit,
    renewal: Option<&Renewed>,
) -> Result<(ResponseHeader, FileBody)> {
    memory_hit::tell(engine, &hit.accesses);
    let mut header = hit.header;
    memory_hit::stamp(&mut header, hit.age, renewal)?;
    Ok((header, hit.body))
}
