//! `StoredMeta`: an object's `CacheMeta` as stored, the two halves
//! `CacheMeta::serialize` returns, shared by the index, fills and hits. The
//! first decode is kept (`meta_decode`), so later hits decode nothing; two
//! stored metas are equal when their bytes are.

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
