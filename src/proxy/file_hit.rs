//! Fresh disk hits the HTTP/1 hit lane sends from their body file over a
//! plain-TCP connection ([`crate::lane`]'s `sendfile`): whole,
//! unconditional GETs and HEADs of a 200 with a `Content-Length`, larger
//! than the store reads inline, whose body the page cache holds. Any other
//! object is a memory hit or takes Pingora's path, as before.
//!
//! The answer is the one Pingora's hit path gives, field for field: the
//! stored header prepared as a memory hit's ([`memory_hit::prepare`]), its
//! `Age` set and a renewed token appended; the eviction manager is told of
//! the access as Pingora's `cache_found` tells it.

use std::time::SystemTime;

use http::header::AGE;
use pingora::prelude::*;
use pingora_cache::CacheKey;
use pingora_http::ResponseHeader;

use super::memory_hit;
use crate::auth::Renewed;
use crate::cache::engine::Engine;
use crate::cache::store::{FileBody, FileHit, Held};

/// The object of `key` when it is fresh and whole: its body file when
/// `files` and the page cache holds it ([`Held::File`]), else its copy in
/// memory; `None` when neither.
pub fn held(engine: &'static Engine, key: &CacheKey, files: bool) -> Result<Option<Held>> {
    engine.store.fresh_hit(
        key,
        SystemTime::now(),
        memory_hit::sendable,
        |h| memory_hit::prepare(engine, h),
        files,
    )
}

/// The answer of `hit`, its access told: the stored header with its `Age`
/// and a renewed token, and the body file.
pub fn answer(
    engine: &'static Engine,
    hit: FileHit,
    renewal: Option<&Renewed>,
) -> Result<(ResponseHeader, FileBody)> {
    let told = &hit.accesses;
    engine
        .eviction
        .access_counted(&told.entry, told.weight, told.requests);
    let mut header = hit.header;
    header.insert_header(AGE, hit.age.as_secs())?;
    if let Some(renewed) = renewal {
        header.append_header(renewed.name.clone(), renewed.value.as_str())?;
    }
    Ok((header, hit.body))
}
