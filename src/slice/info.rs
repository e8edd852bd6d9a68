//! What the node knows about a large object without its body: length,
//! version (ETag) and the headers clients get, learnt from an origin HEAD
//! (or a probe GET's 206, taken as the whole object's 200) and stored in
//! the disk store as a body-less record (so it is bounded, evicted and
//! purged like everything else, and survives restarts).

use std::time::SystemTime;

use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

use crate::origin::response::passes_header;

/// The record keeps the object's length here: its own `Content-Length` is
/// that of the record body (0).
const LENGTH_HEADER: &str = "x-cdn-node-object-length";

/// Response headers never copied from the origin's HEAD answer.
const DROPPED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "date",
    "accept-ranges",
    "content-range",
];

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub len: u64,
    /// The ETag exactly as the origin sent it.
    pub etag: String,
    /// The whole object's 200 header as clients get it.
    pub header: ResponseHeader,
    pub fresh_until: SystemTime,
}

impl ObjectInfo {
    /// From the origin's answer to HEAD: `None` unless it is a 200 with a
    /// length and an ETag.
    pub fn from_head(resp: &ResponseHeader, fresh_until: SystemTime) -> Option<ObjectInfo> {
        if resp.status.as_u16() != 200 {
            return None;
        }
        let len = resp
            .headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let etag = resp
            .headers
            .get(http::header::ETAG)?
            .to_str()
            .ok()?
            .to_string();
        let mut header = ResponseHeader::build(200, None).ok()?;
        for (name, value) in resp.headers.iter() {
            let n = name.as_str();
            if passes_header(n) && !DROPPED.contains(&n) {
                header.append_header(name.clone(), value.clone()).ok()?;
            }
        }
        Some(ObjectInfo {
            len,
            etag,
            header,
            fresh_until,
        })
    }

    /// The record's meta as stored: the header with the length moved aside.
    pub fn to_meta(&self, created: SystemTime, swr: u32, sie: u32) -> CacheMeta {
        let mut h = self.header.clone();
        let _ = h.insert_header(LENGTH_HEADER, self.len);
        let _ = h.insert_header(http::header::CONTENT_LENGTH, 0);
        CacheMeta::new(self.fresh_until, created, swr, sie, h)
    }

    /// Back from a stored record.
    pub fn from_meta(meta: &CacheMeta) -> Option<ObjectInfo> {
        let stored = meta.response_header();
        let len = stored
            .headers
            .get(LENGTH_HEADER)?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        let etag = stored
            .headers
            .get(http::header::ETAG)?
            .to_str()
            .ok()?
            .to_string();
        let mut header = stored.clone();
        header.remove_header(LENGTH_HEADER);
        header.remove_header(&http::header::CONTENT_LENGTH);
        Some(ObjectInfo {
            len,
            etag,
            header,
            fresh_until: meta.fresh_until(),
        })
    }

    /// The header of the whole object, for a client.
    pub fn client_header(&self) -> ResponseHeader {
        let mut h = self.header.clone();
        let _ = h.insert_header(http::header::CONTENT_LENGTH, self.len);
        h
    }

    /// Number of slices of `size` bytes.
    pub fn slices(&self, size: u64) -> u64 {
        self.len.div_ceil(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_record_round_trips_and_hides_origin_bookkeeping() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-length", "5000000000").unwrap();
        resp.insert_header("etag", "\"v1\"").unwrap();
        resp.insert_header("content-type", "video/mp4").unwrap();
        resp.insert_header("x-amz-request-id", "r").unwrap();
        resp.insert_header("x-amz-meta-course", "101").unwrap();
        let fresh = SystemTime::now() + Duration::from_secs(60);
        let info = ObjectInfo::from_head(&resp, fresh).unwrap();
        assert_eq!(info.len, 5_000_000_000);
        let meta = info.to_meta(SystemTime::now(), 0, 0);
        assert_eq!(
            meta.headers().get("content-length").unwrap().as_bytes(),
            b"0"
        );
        let back = ObjectInfo::from_meta(&meta).unwrap();
        assert_eq!(back.len, info.len);
        assert_eq!(back.etag, "\"v1\"");
        let h = back.client_header();
        assert_eq!(
            h.headers.get("content-length").unwrap().as_bytes(),
            b"5000000000"
        );
        assert!(h.headers.get("x-amz-request-id").is_none());
        assert!(h.headers.get(LENGTH_HEADER).is_none());
        assert_eq!(
            h.headers.get("x-amz-meta-course").unwrap().as_bytes(),
            b"101"
        );
        assert_eq!(info.slices(4), 1_250_000_000);
    }

    #[test]
    fn only_a_200_with_length_and_etag_is_an_object() {
        let fresh = SystemTime::now();
        let mut no_etag = ResponseHeader::build(200, None).unwrap();
        no_etag.insert_header("content-length", "10").unwrap();
        assert!(ObjectInfo::from_head(&no_etag, fresh).is_none());
        let mut not_found = ResponseHeader::build(404, None).unwrap();
        not_found.insert_header("content-length", "10").unwrap();
        not_found.insert_header("etag", "\"x\"").unwrap();
        assert!(ObjectInfo::from_head(&not_found, fresh).is_none());
    }
}
