//! Stored response headers decoded once, not on every hit.
//!
//! `CacheMeta::deserialize` decompresses (zstd) and parses the response
//! header on every hit. The index keeps the header decoded after the first
//! hit; later hits decode the internal half as usual together with a fixed,
//! minimal header, and then put a copy of the decoded one in its place. The
//! internal half (times, stale windows, variance) is always decoded from the
//! stored bytes, so nothing of the meta but the header is reused. The meta
//! files keep Pingora's bytes as they are.
//!
//! The minimal header is a zstd frame of one raw (stored) block, RFC 8878
//! section 3.1.1.2: decoding it is a copy.

use pingora_cache::CacheMeta;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use std::sync::LazyLock;

/// zstd frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Frame header descriptor: 4-byte content size, single segment, no
/// checksum, no dictionary.
const DESCRIPTOR: u8 = 0b1010_0000;

/// `data` (a few bytes: one block) as a zstd frame of one raw block.
fn raw_frame(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(&MAGIC);
    out.push(DESCRIPTOR);
    out.extend_from_slice(&len.to_le_bytes());
    // Block header, 3 bytes LE: last-block bit, type 0 (raw), size.
    let block = 1 | (len << 3);
    out.extend_from_slice(&block.to_le_bytes()[..3]);
    out.extend_from_slice(data);
    out
}

/// The serialized form of a header with no fields, as `CacheMeta` reads it.
static MINIMAL: LazyLock<Vec<u8>> = LazyLock::new(|| raw_frame(b"HTTP/1.1 200 OK\r\n\r\n"));

/// Decodes a serialized `CacheMeta`; `decoded` is its response header when
/// already known (from an earlier decode of the same bytes).
pub fn decode(
    internal: &[u8],
    header: &[u8],
    decoded: Option<&ResponseHeader>,
) -> Result<CacheMeta> {
    match decoded {
        Some(known) => {
            let mut meta = CacheMeta::deserialize(internal, &MINIMAL)?;
            *meta.response_header_mut() = known.clone();
            Ok(meta)
        }
        None => CacheMeta::deserialize(internal, header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_known_header_gives_the_same_meta() {
        let cases: Vec<(u16, Vec<(&str, String)>)> = vec![
            (200, vec![]),
            (
                200,
                vec![
                    ("content-length", "1024".into()),
                    ("ETag", "\"abc\"".into()),
                    ("x-amz-meta-a", "one".into()),
                    ("x-amz-meta-a", "two".into()),
                ],
            ),
            (404, vec![("content-type", "application/xml".into())]),
        ];
        let now = SystemTime::now();
        for (status, fields) in cases {
            let mut h = ResponseHeader::build(status, None).unwrap();
            for (name, value) in &fields {
                h.append_header(name.to_string(), value.as_str()).unwrap();
            }
            let mut meta = CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, h);
            meta.set_variance_key([9; 16]);
            meta.set_epoch_override(now - Duration::from_secs(3));
            let (internal, header) = meta.serialize().unwrap();
            let first = decode(&internal, &header, None).unwrap();
            let again = decode(&internal, &header, Some(first.response_header())).unwrap();
            assert_eq!(
                first.response_header().status,
                again.response_header().status
            );
            assert_eq!(first.headers(), again.headers(), "status {status}");
            assert_eq!(first.serialize().unwrap(), again.serialize().unwrap());
            assert_eq!(again.variance(), Some([9; 16]));
            assert_eq!(again.epoch(), now - Duration::from_secs(3));
        }
    }

    #[test]
    fn the_minimal_header_is_one_raw_block() {
        let want: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, // magic
            0xa0, // descriptor
            19, 0, 0, 0, // content size
            0x99, 0, 0, // last, raw, 19 bytes
        ];
        assert_eq!(&MINIMAL[..12], want);
        assert_eq!(&MINIMAL[12..], b"HTTP/1.1 200 OK\r\n\r\n");
        let meta = CacheMeta::new(SystemTime::now(), SystemTime::now(), 0, 0, {
            ResponseHeader::build(200, None).unwrap()
        });
        let (internal, _) = meta.serialize().unwrap();
        assert!(CacheMeta::deserialize(&internal, &MINIMAL).is_ok());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"not a meta", b"not a header", None).is_err());
    }
}
