//! Stored response headers made cheap to decode on every hit.
//!
//! `CacheMeta::serialize` compresses the response header with zstd, and
//! `CacheMeta::deserialize` decompresses it again on each hit, building
//! Huffman tables for a few hundred bytes every time. The meta files keep
//! Pingora's bytes as they are; in memory, the header half is re-encoded once
//! as a zstd frame of *raw* (stored, uncompressed) blocks, RFC 8878 section
//! 3.1.1.2: the same header, which the same decoder reads with a copy.
//! The re-encoding is checked by decoding it back; when anything differs the
//! original bytes are used.

use pingora_cache::CacheMeta;

/// zstd frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Frame header descriptor: 4-byte content size, single segment, no
/// checksum, no dictionary.
const DESCRIPTOR: u8 = 0b1010_0000;
/// Largest block.
const MAX_BLOCK: usize = 128 * 1024;

/// `data` as one zstd frame of raw blocks.
fn raw_frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(data.len()).ok()?;
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&MAGIC);
    out.push(DESCRIPTOR);
    out.extend_from_slice(&len.to_le_bytes());
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if data.is_empty() {
        // One empty last block.
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        // Block header: last-block bit, type 0 (raw), size; 3 bytes LE.
        let header = last | ((block.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
    Some(out)
}

/// The header half of a serialized `CacheMeta` re-encoded without
/// compression, or `None` when it cannot be (then keep the original).
pub fn reencode(internal: &[u8], header: &[u8]) -> Option<Vec<u8>> {
    let meta = CacheMeta::deserialize(internal, header).ok()?;
    let resp = meta.response_header();
    // The wire form `CacheMeta` compresses: status line, fields, blank line.
    let mut text = Vec::with_capacity(512);
    text.extend_from_slice(b"HTTP/1.1 ");
    text.extend_from_slice(resp.status.as_str().as_bytes());
    text.push(b' ');
    text.extend_from_slice(resp.status.canonical_reason().unwrap_or("").as_bytes());
    text.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(&mut text);
    text.extend_from_slice(b"\r\n");
    let frame = raw_frame(&text)?;
    let back = CacheMeta::deserialize(internal, &frame).ok()?;
    let same = back.response_header().status == resp.status && back.headers() == meta.headers();
    same.then_some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn serialized(header: ResponseHeader) -> (Vec<u8>, Vec<u8>) {
        let now = SystemTime::now();
        CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header)
            .serialize()
            .unwrap()
    }

    #[test]
    fn decodes_to_the_same_meta() {
        let cases: Vec<(u16, Vec<(&str, String)>)> = vec![
            (200, vec![]),
            (
                200,
                vec![
                    ("content-length", "1024".into()),
                    ("etag", "\"abc\"".into()),
                    ("x-amz-meta-a", "one".into()),
                    ("x-amz-meta-a", "two".into()),
                ],
            ),
            (404, vec![("content-type", "application/xml".into())]),
            (299, vec![("x-long", "v".repeat(100_000))]),
        ];
        for (status, fields) in cases {
            let mut h = ResponseHeader::build(status, None).unwrap();
            for (name, value) in &fields {
                h.append_header(name.to_string(), value.as_str()).unwrap();
            }
            let (internal, header) = serialized(h);
            let plain = reencode(&internal, &header).expect("re-encoded");
            let a = CacheMeta::deserialize(&internal, &header).unwrap();
            let b = CacheMeta::deserialize(&internal, &plain).unwrap();
            assert_eq!(a.response_header().status, b.response_header().status);
            assert_eq!(a.headers(), b.headers(), "status {status}");
            assert_eq!(a.fresh_until(), b.fresh_until());
            assert_eq!(a.stale_if_error_sec(), b.stale_if_error_sec());
        }
    }

    #[test]
    fn frames_split_into_blocks() {
        let data = vec![b'x'; MAX_BLOCK * 2 + 5];
        let frame = raw_frame(&data).unwrap();
        // Magic, descriptor, size, three block headers, the data.
        assert_eq!(frame.len(), 4 + 1 + 4 + 3 * 3 + data.len());
        assert_eq!(&frame[..4], &MAGIC);
        let first = u32::from_le_bytes([frame[9], frame[10], frame[11], 0]);
        assert_eq!((first & 1, first >> 3), (0, MAX_BLOCK as u32));
    }

    #[test]
    fn garbage_is_left_alone() {
        assert!(reencode(b"not a meta", b"not a header").is_none());
    }
}
