//! `multipart/byteranges` framing of a multi-range answer, for routes that
//! write the body themselves (the slicer), and the byte spans a range
//! answer sends.

use std::ops::Range;

use bytes::Bytes;
use pingora_proxy::RangeType;

/// `multipart/byteranges` framing, byte for byte what
/// `MultiRangeInfo::calculate_multipart_length` counts.
pub struct Multipart {
    pub boundary: String,
    pub content_type: Option<String>,
    pub len: u64,
}

impl Multipart {
    pub fn part_head(&self, r: &Range<u64>) -> Bytes {
        let ct = self
            .content_type
            .as_ref()
            .map(|ct| format!("Content-Type: {ct}\r\n"))
            .unwrap_or_default();
        Bytes::from(format!(
            "\r\n--{}\r\n{ct}Content-Range: bytes {}-{}/{}\r\n\r\n",
            self.boundary,
            r.start,
            r.end - 1,
            self.len
        ))
    }

    pub fn tail(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }
}

/// The spans of an object of `len` bytes that an answer with `range`
/// sends, in order, and the framing around them when there are several.
/// An unsatisfiable range sends nothing.
pub fn parts(range: &RangeType, len: u64) -> (Vec<Range<u64>>, Option<Multipart>) {
    match range {
        RangeType::None => (std::iter::once(0..len).collect(), None),
        RangeType::Single(r) => (
            std::iter::once(r.start as u64..r.end as u64).collect(),
            None,
        ),
        RangeType::Multi(m) => (
            m.ranges
                .iter()
                .map(|r| r.start as u64..r.end as u64)
                .collect(),
            Some(Multipart {
                boundary: m.boundary.clone(),
                content_type: m.content_type.clone(),
                len,
            }),
        ),
        RangeType::Invalid => (Vec::new(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_what_pingora_counts() {
        let m = Multipart {
            boundary: "b".into(),
            content_type: Some("video/mp4".into()),
            len: 1000,
        };
        assert_eq!(
            &m.part_head(&(0..10))[..],
            b"\r\n--b\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/1000\r\n\r\n"
        );
        assert_eq!(&m.tail()[..], b"\r\n--b--\r\n");
        let bare = Multipart {
            content_type: None,
            ..m
        };
        assert_eq!(
            &bare.part_head(&(990..1000))[..],
            b"\r\n--b\r\nContent-Range: bytes 990-999/1000\r\n\r\n"
        );
    }

    #[test]
    fn whole_single_and_invalid_spans() {
        assert_eq!(
            parts(&RangeType::None, 100).0,
            std::iter::once(0..100).collect::<Vec<_>>()
        );
        assert_eq!(
            parts(&RangeType::Single(5..10), 100).0,
            std::iter::once(5..10).collect::<Vec<_>>()
        );
        let (spans, framing) = parts(&RangeType::Invalid, 100);
        assert!(spans.is_empty() && framing.is_none());
    }
}
