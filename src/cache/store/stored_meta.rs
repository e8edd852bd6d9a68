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

    /// When the origin produced this copy, at the latest: the time it was
    /// stored less the `Age` it arrived with, or the end of the second of
    /// its `Date` when earlier (a copy from another cache tier keeps the
    /// origin's `Date`). `None` when the meta does not decode.
    pub fn fetched_at(&self) -> Option<SystemTime> {
        let meta = self.decode().ok()?;
        let headers = &meta.response_header().headers;
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        let age = text(http::header::AGE)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let stored = meta
            .created()
            .checked_sub(Duration::from_secs(age))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let date = text(http::header::DATE)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|d| d + Duration::from_secs(1));
        Some(date.map_or(stored, |d| d.min(stored)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::ResponseHeader;

    fn stored(created: SystemTime, fields: &[(&str, String)]) -> StoredMeta {
        let mut h = ResponseHeader::build(200, None).expect("header");
        for (name, value) in fields {
            h.insert_header(name.to_string(), value).expect("field");
        }
        let meta = CacheMeta::new(created + Duration::from_secs(60), created, 0, 0, h);
        let (internal, header) = meta.serialize().expect("serialize");
        StoredMeta::new(internal, header)
    }

    #[test]
    fn fetched_at_counts_age_and_the_origins_date() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let secs = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let cases: &[(&[(&str, String)], SystemTime)] = &[
            (&[], created),
            (&[("age", "30".into())], secs(1_699_999_970)),
            (&[("age", "soon".into())], created),
            // A copy from another tier keeps the origin's Date: the end of
            // that second.
            (
                &[("date", httpdate::fmt_http_date(secs(1_699_990_000)))],
                secs(1_699_990_001),
            ),
            // A Date later than the store time changes nothing.
            (
                &[("date", httpdate::fmt_http_date(secs(1_700_000_500)))],
                created,
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(
                stored(created, fields).fetched_at(),
                Some(*want),
                "{fields:?}"
            );
        }
    }
}
