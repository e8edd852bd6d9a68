//! `StoredMeta`: an object's `CacheMeta` as stored, the two halves
//! `CacheMeta::serialize` returns, shared by the index, fills and hits. The
//! first decode is kept (`meta_decode`), so later hits decode nothing; two
//! stored metas are equal when their bytes are.

use std::time::{Duration, SystemTime};

use pingora_cache::CacheMeta;

use super::meta_decode::{Decoded, View};

/// A serialized `CacheMeta` (the two halves `CacheMeta::serialize` returns).
#[derive(Debug, Clone)]
pub struct StoredMeta {
    pub internal: Vec<u8>,
    pub header: Vec<u8>,
    /// What the first decode learnt, for the next ones.
    decoded: Decoded,
}

impl StoredMeta {
    pub fn new(internal: Vec<u8>, header: Vec<u8>) -> StoredMeta {
        StoredMeta {
            internal,
            header,
            decoded: Decoded::default(),
        }
    }

    /// The `CacheMeta`; decoded in full only the first time.
    pub fn decode(&self) -> pingora_error::Result<CacheMeta> {
        self.decoded.decode(&self.internal, &self.header)
    }

    /// When the origin produced this copy: the time it was stored less
    /// the `Age` it arrived with (a copy from another cache tier is as old
    /// as that tier says). `None` when the meta does not decode.
    pub fn fetched_at(&self) -> Option<SystemTime> {
        let meta = self.decode().ok()?;
        let age = meta
            .response_header()
            .headers
            .get(http::header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Some(
            meta.created()
                .checked_sub(Duration::from_secs(age))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    }

    /// The header and times, once a decode has learnt them.
    pub fn view(&self) -> Option<View<'_>> {
        self.decoded.view()
    }
}

impl PartialEq for StoredMeta {
    fn eq(&self, other: &Self) -> bool {
        self.internal == other.internal && self.header == other.header
    }
}

impl Eq for StoredMeta {}
